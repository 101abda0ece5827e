"""Clients nobody here wrote, unchanged, against the real server: their results equal the in-process
components' within 1e-5.

- the ``openai`` SDK: text (float, and its default base64), images via ``extra_body={"modality": "image"}``
  with data URIs, ``dimensions``, and its async client;
- LlamaIndex's ``OpenAILikeEmbedding`` (text), ``JinaRerank``, and the TEI integrations
  (``TextEmbeddingsInference`` on ``/embed``, ``TextEmbeddingInference`` rerank on ``/rerank``, which sends
  its key without ``Bearer``).
"""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from tests.serve.conftest import API_KEY, TEXTS, data_uri

TOLERANCE = 1e-5


def _close(got, expected) -> None:  # type: ignore[no-untyped-def]
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < TOLERANCE


@pytest.fixture(scope="module")
def openai_client(served):  # type: ignore[no-untyped-def]
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served.base + "/v1", api_key=API_KEY, max_retries=0)
    yield client
    client.close()


def test_openai_sdk_text_float_and_default_base64(served, openai_client) -> None:  # type: ignore[no-untyped-def]
    expected = served.embedding.get_text_embedding_batch(TEXTS)
    as_float = openai_client.embeddings.create(input=TEXTS, model=served.embedding.model_name, encoding_format="float")
    as_base64 = openai_client.embeddings.create(input=TEXTS, model=served.embedding.model_name)  # the SDK's default
    for response in (as_float, as_base64):
        assert [item.index for item in response.data] == list(range(len(TEXTS)))
        _close([item.embedding for item in response.data], expected)
        assert response.model == served.embedding.model_name
        assert response.usage.prompt_tokens > len(TEXTS)  # counted by the model's tokenizer
    single = openai_client.embeddings.create(input=TEXTS[0], model=served.embedding.model_name)
    _close(single.data[0].embedding, expected[0])


def test_openai_sdk_images_as_data_uris(served, openai_client) -> None:  # type: ignore[no-untyped-def]
    paths = [served.images[name] for name in ("png", "jpeg", "webp")]
    response = openai_client.embeddings.create(input=[data_uri(p) for p in paths], model=served.embedding.model_name,
                                               extra_body={"modality": "image"})
    _close([item.embedding for item in response.data], served.embedding.get_image_embedding_batch(paths))


def test_openai_sdk_dimensions_cut_and_renormalise(served, openai_client) -> None:  # type: ignore[no-untyped-def]
    response = openai_client.embeddings.create(input=TEXTS[:2], model=served.embedding.model_name, dimensions=8,
                                               encoding_format="float")
    full = np.asarray(served.embedding.get_text_embedding_batch(TEXTS[:2]))[:, :8]
    _close([item.embedding for item in response.data], full / np.linalg.norm(full, axis=1, keepdims=True))


def test_openai_sdk_query_role_and_async_client(served) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    openai = pytest.importorskip("openai")

    async def run():  # type: ignore[no-untyped-def]
        async with openai.AsyncOpenAI(base_url=served.base + "/v1", api_key=API_KEY, max_retries=0) as client:
            jobs = [client.embeddings.create(input=[text], model=served.embedding.model_name,
                                             extra_body={"input_type": "query"}) for text in TEXTS]
            return await asyncio.gather(*jobs)

    responses = asyncio.run(run())
    _close([r.data[0].embedding for r in responses], [served.embedding.get_query_embedding(t) for t in TEXTS])


def test_openai_like_embedding(served) -> None:  # type: ignore[no-untyped-def]
    module = pytest.importorskip("llama_index.embeddings.openai_like")
    client = module.OpenAILikeEmbedding(model_name=served.embedding.model_name, api_base=served.base + "/v1",
                                        api_key=API_KEY, max_retries=0)
    _close(client.get_text_embedding_batch(TEXTS), served.embedding.get_text_embedding_batch(TEXTS))
    _close(client.get_query_embedding(TEXTS[1]), served.embedding.get_text_embedding(TEXTS[1]))


def test_text_embeddings_inference_client(served) -> None:  # type: ignore[no-untyped-def]
    module = pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    client = module.TextEmbeddingsInference(model_name="served", base_url=served.base, auth_token=API_KEY)
    _close(client.get_text_embedding_batch(TEXTS), served.embedding.get_text_embedding_batch(TEXTS))


def _text_nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(id_=f"doc-{i}", text=text), score=0.0) for i, text in enumerate(TEXTS)]


def _in_process_ranking(served, query: str) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    ranked = served.reranker.model_copy(update={"top_n": len(TEXTS)}).postprocess_nodes(_text_nodes(), query_str=query)
    return [(item.node.node_id, float(item.score)) for item in ranked]


def test_jina_rerank_client(served) -> None:  # type: ignore[no-untyped-def]
    module = pytest.importorskip("llama_index.postprocessor.jinaai_rerank")
    model = served.reranker.scorers[0].name
    client = module.JinaRerank(api_key=API_KEY, base_url=served.base + "/v1", model=model, top_n=3)
    got = client.postprocess_nodes(_text_nodes(), query_bundle=QueryBundle("round circles"))
    expected = _in_process_ranking(served, "round circles")[:3]
    assert [item.node.node_id for item in got] == [node_id for node_id, _ in expected]
    _close([item.score for item in got], [score for _, score in expected])


def test_jina_rerank_reads_the_detail_of_an_error(served) -> None:  # type: ignore[no-untyped-def]
    module = pytest.importorskip("llama_index.postprocessor.jinaai_rerank")
    client = module.JinaRerank(api_key="wrong", base_url=served.base + "/v1", model="anything", top_n=3)
    with pytest.raises(RuntimeError, match="API key"):
        client.postprocess_nodes(_text_nodes(), query_bundle=QueryBundle("round"))


def test_tei_rerank_client_with_a_bare_key(served) -> None:  # type: ignore[no-untyped-def]
    module = pytest.importorskip("llama_index.postprocessor.tei_rerank")
    client = module.TextEmbeddingInference(base_url=served.base, top_n=3, auth_token=API_KEY)  # no "Bearer "
    got = client.postprocess_nodes(_text_nodes(), query_bundle=QueryBundle("blue sky"))
    expected = _in_process_ranking(served, "blue sky")[:3]
    assert [item.node.node_id for item in got] == [node_id for node_id, _ in expected]
    _close([item.score for item in got], [score for _, score in expected])
