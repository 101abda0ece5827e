"""The recommended pipeline: retrieve (hybrid RRF) -> rerank -> nodes, and a query engine on top."""

from __future__ import annotations

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, QueryBundle, TextNode

from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore, MultimodalReranker, build_pipeline
from llama_index_mm_st.errors import InvalidQueryError
from tests.fixtures.ranking import assert_same_ranking

RARE = "Part QX-7731 is the replacement valve."


@pytest.fixture(scope="module")
def indexed(tiny_clip_dir, image_files):  # type: ignore[no-untyped-def]
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    store = MultimodalQdrantStore("pipeline")
    nodes = [TextNode(text=RARE), TextNode(text="Circles are round."), TextNode(text="The sky is blue at noon.")]
    nodes += [ImageNode(image_path=str(image_files[f])) for f in ("png", "jpeg", "bmp")]
    store.add(embedding(nodes))
    yield store, embedding, nodes
    store.close()


def test_text_and_image_search(indexed):
    store, embedding, nodes = indexed
    search = build_pipeline(store, embedding, top_k=4)
    assert search.search(RARE)[0].node.node_id == nodes[0].node_id
    by_image = search.search(image=nodes[4].image_path)
    assert by_image[0].node.node_id == nodes[4].node_id
    sparse = build_pipeline(store, embedding, top_k=2, mode="sparse").search("QX-7731")
    assert [hit.node.node_id for hit in sparse] == [nodes[0].node_id]
    images_only = build_pipeline(store, embedding, top_k=6, modality="image").search("anything")
    assert images_only and all(isinstance(hit.node, ImageNode) for hit in images_only)


def test_reranker_reorders_and_keeps_top_n(indexed, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir):
    store, embedding, _ = indexed
    reranker = MultimodalReranker([str(tiny_bert_cross_encoder_dir), str(tiny_blip_itm_dir)], top_n=3,
                                  precision="fp32", device="cpu")
    results = build_pipeline(store, embedding, reranker, top_k=6).search("round circles")
    assert len(results) == 3
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert all(r.retrieval_score is not None for r in results)


async def test_async_retrieve_matches_sync(indexed):
    store, embedding, _ = indexed
    search = build_pipeline(store, embedding, top_k=3)
    sync = [hit.node.node_id for hit in search.retrieve(RARE)]
    asynchronous = [hit.node.node_id for hit in await search.aretrieve(QueryBundle(query_str=RARE))]
    assert sync == asynchronous


def test_query_engine_answers_from_the_retrieved_nodes(indexed):
    store, embedding, nodes = indexed
    engine = build_pipeline(store, embedding, top_k=2).as_query_engine(llm=MockLLM())
    response = engine.query(RARE)
    assert nodes[0].node_id in [source.node.node_id for source in response.source_nodes]
    # MockLLM answers with the prompt it was given: the retrieved text reached the LLM
    assert RARE in str(response) and "The sky is blue" not in str(response)


def test_bad_arguments(indexed):
    store, embedding, _ = indexed
    with pytest.raises(ValueError, match="mode"):
        build_pipeline(store, embedding, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k"):
        build_pipeline(store, embedding, top_k=0)
    with pytest.raises(ValueError, match="text, an image"):
        build_pipeline(store, embedding).search()


def test_search_by_audio_example_ranks_the_same_clip_first(tmp_path, tiny_clap_dir, media_files):
    pytest.importorskip("av")
    from llama_index_mm_st import MediaReader, MultimodalEmbedding, MultimodalQdrantStore, build_pipeline

    embedding = MultimodalEmbedding(str(tiny_clap_dir), precision="fp32")
    documents = MediaReader().load_data([media_files[n] for n in ("tone", "chirp", "noise")])
    store = MultimodalQdrantStore("sounds", path=str(tmp_path / "index"))
    store.add(embedding(documents))
    search = build_pipeline(store, embedding, top_k=3)
    for name in ("chirp", "noise"):
        hits = search.search(audio=media_files[name])
        assert hits[0].node.metadata["file_name"] == media_files[name].name
    with pytest.raises(ValueError, match="one example at a time"):
        search.search(audio=media_files["tone"], image="x.png")
    store.close()


def test_search_quality_options_reach_the_store(indexed):
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store, embedding, nodes = indexed
    vector = embedding.get_query_embedding("round circles")
    for options, store_kwargs in [
        ({"mmr": 0.3}, {"mmr_threshold": 0.3}),
        ({"max_per_document": 1, "fusion": "dbsf"}, {"max_per_document": 1, "fusion": "dbsf"}),
        ({"rrf_k": 5, "rrf_weights": {"image": 3.0}}, {"rrf_k": 5, "rrf_weights": {"image": 3.0}}),
    ]:
        got = build_pipeline(store, embedding, top_k=4, mode="dense", **options).search("round circles")
        want = store.query(VectorStoreQuery(query_embedding=vector, query_str="round circles", similarity_top_k=4),
                           query_modality="text", **store_kwargs)
        assert_same_ranking([h.node.node_id for h in got], [h.score for h in got], want.ids, want.similarities)


def test_unknown_and_conflicting_pipeline_options_are_refused(indexed):
    store, embedding, _ = indexed
    with pytest.raises(TypeError, match=r"unexpected argument 'mmr_lambda'; valid: .*mmr"):
        build_pipeline(store, embedding, mmr_lambda=0.5)
    # Every refusal names its option (InvalidQueryError.param), so front ends word it without reading the text.
    with pytest.raises(InvalidQueryError, match="MMR compares the hits' dense vectors") as refused:
        build_pipeline(store, embedding, mode="sparse", mmr=0.5)
    assert refused.value.param == "mmr"
    with pytest.raises(InvalidQueryError, match="must be one of") as refused:
        build_pipeline(store, embedding, fusion="borda")  # before any query or model runs
    assert refused.value.param == "fusion"
    # Weights are checked when the pipeline is built, before any query or model runs.
    with pytest.raises(ValueError, match="DBSF normalises each list's scores and takes no weights") as refused:
        build_pipeline(store, embedding, fusion="dbsf", rrf_weights={"image": 2.0})
    assert refused.value.param == "rrf_weights"
    for weight in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidQueryError, match="must be a finite number >= 0"):
            build_pipeline(store, embedding, rrf_weights={"image": weight})
    with pytest.raises(ValueError, match=r"rrf_weights keys must be among .*\['pictures'\]"):
        build_pipeline(store, embedding, rrf_weights={"pictures": 2.0})
