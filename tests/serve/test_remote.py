"""``RemoteMultimodalEmbedding`` and ``RemoteReranker`` against the real server: the same vectors and the
same ``build_pipeline`` results as the in-process components, retries through overload, and errors that
name the item or the server."""

from __future__ import annotations

import asyncio
import copy
import time

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, QueryBundle, TextNode
from PIL import Image

from llama_index_mm_st import (
    ImageLoadError, RemoteMultimodalEmbedding, RemoteReranker, RemoteServerError, build_pipeline,
)
from tests.serve.conftest import API_KEY, RARE, TEXTS, running_server


def _close(got, expected) -> None:  # type: ignore[no-untyped-def]
    assert np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64)).max() < 1e-5


@pytest.fixture(scope="module")
def remote(served):  # type: ignore[no-untyped-def]
    client = RemoteMultimodalEmbedding(served.base, api_key=API_KEY)
    yield client
    client.close()


def test_vectors_equal_the_in_process_embedding(served, remote) -> None:  # type: ignore[no-untyped-def]
    local, images = served.embedding, served.images
    _close(remote.get_text_embedding_batch(TEXTS), local.get_text_embedding_batch(TEXTS))
    _close(remote.get_query_embedding(RARE), local.get_query_embedding(RARE))
    inputs = [images["jpeg"], str(images["png"]), images["webp"].read_bytes(), Image.open(images["bmp"]),
              np.asarray(Image.open(images["gif"]).convert("RGB"))]
    _close(remote.get_image_embedding_batch(inputs), local.get_image_embedding_batch(inputs))
    _close(remote.get_image_query_embedding(images["tiff"]), local.get_image_query_embedding(images["tiff"]))
    assert remote.dimension == local.dimension
    assert remote.supports("image") and not remote.supports("audio")
    with_v1 = RemoteMultimodalEmbedding(served.base + "/v1", api_key=API_KEY, model_name=local.model_name)
    _close(with_v1.get_text_embedding(TEXTS[0]), local.get_text_embedding(TEXTS[0]))


def test_nodes_get_the_vectors_the_in_process_transformation_gives(served, remote) -> None:  # type: ignore[no-untyped-def]
    nodes = [TextNode(id_="t", text="Circles are round."), ImageNode(id_="i", image_path=str(served.images["png"])),
             ImageNode(id_="c", image_path=str(served.images["jpeg"]), text="a caption")]
    theirs, ours = served.embedding(copy.deepcopy(nodes)), remote(copy.deepcopy(nodes))
    for mine, reference in zip(ours, theirs):
        _close(mine.embedding, reference.embedding)
    _close(ours[2].text_embedding, theirs[2].text_embedding)
    assert getattr(ours[1], "text_embedding", None) is None


def test_a_bad_item_is_named_and_the_rest_go_through(served, remote, broken_images) -> None:  # type: ignore[no-untyped-def]
    items = [served.images["png"], broken_images["truncated"], broken_images["missing"], served.images["jpeg"]]
    result = remote.embed(items, "image", on_error="skip")
    assert [vector is None for vector in result.embeddings] == [False, True, True, False]
    assert [(f.position, f.item) for f in result.failures] == [(1, str(broken_images["truncated"])),
                                                                (2, str(broken_images["missing"]))]
    assert all(isinstance(f.error, ImageLoadError) for f in result.failures)
    _close(result.embeddings[3], served.embedding.get_image_embedding(served.images["jpeg"]))
    with pytest.raises(ImageLoadError, match="truncated.jpg"):
        remote.get_image_embedding_batch(items[:2])


def test_build_pipeline_with_remote_components_equals_in_process(served, remote) -> None:  # type: ignore[no-untyped-def]
    reranker = served.reranker.model_copy(update={"top_n": 4})
    remote_reranker = RemoteReranker(served.base, api_key=API_KEY, top_n=4)
    for query, image in (("round circles", None), (RARE, None), ("a photo", str(served.images["jpeg"]))):
        local = build_pipeline(served.store, served.embedding, reranker, top_k=8).search(query, image=image)
        far = build_pipeline(served.store, remote, remote_reranker, top_k=8).search(query, image=image)
        assert [n.node.node_id for n in far] == [n.node.node_id for n in local]
        assert [n.score is None for n in far] == [n.score is None for n in local]
        _close([n.score for n in far if n.score is not None], [n.score for n in local if n.score is not None])

    async def both():  # type: ignore[no-untyped-def]
        return (await build_pipeline(served.store, remote, remote_reranker, top_k=8).aretrieve(QueryBundle("blue sky")),
                await build_pipeline(served.store, served.embedding, reranker, top_k=8).aretrieve(QueryBundle("blue sky")))

    far, local = asyncio.run(both())
    assert [n.node.node_id for n in far] == [n.node.node_id for n in local]


def test_the_reranker_sends_images_as_images(served) -> None:  # type: ignore[no-untyped-def]
    nodes = [TextNode(id_="t", text="a red circle"), ImageNode(id_="i", image_path=str(served.images["png"])),
             ImageNode(id_="c", image_path=str(served.images["jpeg"]), text="a caption")]
    from llama_index.core.schema import NodeWithScore

    scored = [NodeWithScore(node=n, score=0.0) for n in nodes]
    reranker = served.reranker.model_copy(update={"top_n": 3})
    local = reranker.postprocess_nodes(scored, query_str="a red circle")
    far = RemoteReranker(served.base, api_key=API_KEY, top_n=3).postprocess_nodes(scored, query_str="a red circle")
    assert [n.node.node_id for n in far] == [n.node.node_id for n in local]
    _close([n.score for n in far], [n.score for n in local])
    assert {n.node.node_id: n.score for n in far} != {}  # BLIP scored the images: no score is missing
    assert all(n.score is not None for n in far)


def test_retries_ride_out_an_overloaded_server(serve_models) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.serve import Components, Limits, ServeSettings, create_app
    from tests.serve.test_load import RecordingEmbedding

    base_embedding = serve_models[0]
    slow = RecordingEmbedding(model=base_embedding.model, device="cpu", precision="fp32", delay=0.1)
    app = create_app(Components(slow), ServeSettings(limits=Limits(max_queue=2)))
    with running_server(app) as base:
        client = RemoteMultimodalEmbedding(base, max_retries=30, max_retry_wait=0.5)

        async def burst():  # type: ignore[no-untyped-def]
            return await asyncio.gather(*(client.aget_text_embedding(f"text {i}") for i in range(16)))

        vectors = asyncio.run(burst())
        import httpx

        refused = httpx.get(base + "/metrics").text
    _close(vectors, base_embedding.get_text_embedding_batch([f"text {i}" for i in range(16)]))
    assert 'mmst_requests_total{route="/embeddings",status="429"}' in refused  # the retries were needed


def test_an_unreachable_server_is_named_at_once() -> None:
    from tests.serve.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    client = RemoteMultimodalEmbedding(url, max_retries=1, model_name="m")
    started = time.monotonic()
    with pytest.raises(RemoteServerError, match=f"the server at {url}/embeddings could not be reached"):
        client.get_text_embedding("x")
    assert time.monotonic() - started < 5


def test_keys_are_never_serialised_and_unknown_arguments_are_refused(served) -> None:  # type: ignore[no-untyped-def]
    client = RemoteMultimodalEmbedding(served.base, api_key=API_KEY)
    assert API_KEY not in repr(client) and API_KEY not in client.to_json()
    assert API_KEY not in RemoteReranker(served.base, api_key=API_KEY).to_json()
    with pytest.raises(TypeError, match="unknown arguments \\['top_k'\\]"):
        RemoteReranker(served.base, top_k=3)
    with pytest.raises(TypeError, match="batch_szie"):
        RemoteMultimodalEmbedding(served.base, batch_szie=3)
    wrong = RemoteMultimodalEmbedding(served.base, api_key="wrong", model_name="m")
    with pytest.raises(RemoteServerError, match="HTTP 401"):
        wrong.get_text_embedding("x")


def test_the_served_model_says_whether_it_is_late_interaction_and_nodes_for_one_are_refused(
        served, remote, tiny_colpali_dir) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    assert remote.late_interaction is False
    late = MultimodalEmbedding(str(tiny_colpali_dir), device="cpu", precision="fp32")
    with running_server(create_app(Components(late), ServeSettings())) as base:
        client = RemoteMultimodalEmbedding(base)
        assert client.late_interaction is True
        page = ImageNode(id_="p", image_path=str(served.images["png"]), text="words on the page")
        with pytest.raises(ValueError, match="late-interaction retriever: its nodes need their token multivectors"):
            client([page])
        assert page.embedding is None  # refused before anything was sent
        _close(client.get_query_embedding("a page"), late.get_query_embedding("a page"))  # queries still work
        client.close()
