"""The statistics behind relevance fusion, on both backends: kept up to date on add and delete, stored
with the collection (a reopened or copied store scores alike), and fitted to labels by ``calibrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.relevance import expected_calibration_error
from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store.calibration import LabeledQuery
from llama_index_mm_st.store.statistics import METADATA_KEY
from tests.fixtures.relevance_sim import SIGLIP, nodes, simulate

Make = Callable[..., MultimodalQdrantStore]
SMALL = dict(texts=150, images=150, captioned=20, filename_captions=20, pdf_pages=20, audio=40, families=30,
             absent_families=4, queries=12, unanswerable=4)
"""A corpus small enough that every point is in the sample (the relevance is then exact to compare)."""


def scores(store: MultimodalQdrantStore, corpus, mode: str = "hybrid", **kwargs) -> dict[str, list[tuple[str, float]]]:
    out = {}
    for q in corpus.queries:
        result = store.query(VectorStoreQuery(query_embedding=q.vector.tolist(), query_str=q.words, mode=mode,
                                              similarity_top_k=8), fusion="relevance", **kwargs)
        out[q.id] = list(zip(result.ids, result.similarities))
    return out


def same(a: dict, b: dict, tolerance: float = 1e-6) -> None:
    for key in a:
        assert [i for i, _ in a[key]] == [i for i, _ in b[key]], key
        assert [s for _, s in a[key]] == pytest.approx([s for _, s in b[key]], abs=tolerance), key


def moments(store: MultimodalQdrantStore, corpus) -> list[float]:
    """Each vector's background as queries see it: its count, and the mean and spread for each query."""
    from llama_index_mm_st.store.statistics import statistics_of

    found = statistics_of(store._collection.backend).backgrounds(["text", "image", "audio"])
    assert set(found) == {"text", "image", "audio"}
    return [float(x) for name in sorted(found) for q in corpus.queries
            for x in (found[name].count, *found[name].moments(q.vector))]


def test_deletes_and_adds_keep_the_statistics_of_the_points_held(make_store: Make) -> None:
    corpus = simulate(SIGLIP, **SMALL)
    items = nodes(corpus)
    gone = {i.node_id for i in items if i.node_id.startswith(("text-1", "image-1"))}  # ~120 of 400: refitted
    store = make_store()
    store.add(items)
    first = moments(store, corpus)
    store.delete_nodes([i for i in gone])
    fresh = make_store(collection_name="fresh")
    fresh.add([i for i in items if i.node_id not in gone])
    assert moments(store, corpus) == pytest.approx(moments(fresh, corpus)) != first
    # The engine's BM25 IDF may count deleted points until it compacts its segments, which moves the word
    # scores: dense relevance (the vectors' statistics alone) is compared exactly.
    same(scores(store, corpus, "default"), scores(fresh, corpus, "default"))
    store.add([i for i in items if i.node_id in gone])  # back again: the same statistics as at first
    assert moments(store, corpus) == pytest.approx(first)
    store.clear()
    store.add(items)
    assert moments(store, corpus) == pytest.approx(first)


def test_a_reopened_store_reads_its_statistics_back(tmp_path: Path) -> None:
    corpus = simulate(SIGLIP, **SMALL)
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        store.add(nodes(corpus))
        first = scores(store, corpus)
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        assert METADATA_KEY in store.get_metadata()
        same(scores(store, corpus), first)
        # A record that no longer matches the points (a crash before it was saved): read from the points.
        store.update_metadata({METADATA_KEY: {"points": 1, "samples": {}}})
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        same(scores(store, corpus), first)


def test_a_copy_scores_alike(make_store: Make) -> None:
    corpus = simulate(SIGLIP, **SMALL)
    source = make_store()
    source.add(nodes(corpus))
    target = make_store(collection_name="copy")
    source.copy_to(target)
    same(scores(target, corpus), scores(source, corpus))


def test_statistics_are_sampled_in_large_collections(make_store: Make) -> None:
    """Past twice the sample's capacity only a bottom-k sample is kept: its estimate of the count is near
    the truth and relevance stays close to the whole collection's."""
    from llama_index_mm_st.store.statistics import statistics_of

    rng = np.random.default_rng(0)
    from llama_index.core.schema import TextNode

    vectors = rng.normal(size=(3000, 16)) + 2.0
    store = make_store()
    store.add([TextNode(id_=f"t{i}", text="w", embedding=v.tolist()) for i, v in enumerate(vectors)])
    stats = statistics_of(store._collection.backend)
    background = stats.backgrounds(["text"])["text"]
    sample = stats._samples.vectors["text"]
    assert sample.tau < 1.0 and len(sample.members) <= 2048
    assert background.count == pytest.approx(3000, rel=0.1)
    query = rng.normal(size=16) + 2.0
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cos = unit @ (query / np.linalg.norm(query))
    mean, sd = background.moments(query)
    assert mean == pytest.approx(cos.mean(), abs=0.01) and sd == pytest.approx(cos.std(), rel=0.1)


def test_a_delete_of_a_few_points_and_of_many_keep_the_sample_of_the_points_held(make_store: Make) -> None:
    """A delete reads the cheaper side: the chosen points' ids when they are fewer than the sample (one
    document's delete), else the sample's members among them (a broad filter). Either way the sample
    is the one a fresh store of the remaining points holds."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from llama_index_mm_st.store.background import point_hash
    from llama_index_mm_st.store.statistics import statistics_of

    rng = np.random.default_rng(3)
    items = []
    for i, vector in enumerate(rng.normal(size=(3000, 8))):
        node = TextNode(id_=f"t{i}", text="w", embedding=vector.tolist(), metadata={"shelf": i % 10})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i // 2}")
        items.append(node)

    def sample(store: MultimodalQdrantStore) -> tuple[set[str], float]:
        statistics_of(store._collection.backend).backgrounds(["text"])  # read or rebuilt
        held = statistics_of(store._collection.backend)._samples.vectors["text"]
        return set(held.members), held.tau

    def members(store: MultimodalQdrantStore) -> set[str]:
        return sample(store)[0]

    store = make_store()
    store.add(items)
    before = members(store)
    assert len(before) < 3000  # a bottom-k sample, not the whole collection
    for number in range(0, 60, 2):  # a few points each, held in the sample or not
        store.delete(f"doc{number}")
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="shelf", value=3,
                                                                        operator=FilterOperator.EQ)]))  # 300 points
    kept = [n for n in items if not (n.ref_doc_id in {f"doc{k}" for k in range(0, 60, 2)} or n.metadata["shelf"] == 3)]
    fresh = make_store(collection_name="fresh")
    fresh.add(kept)
    # Deletes never raise the threshold: the sample is the fresh store's points below the store's threshold.
    held, tau = sample(store)
    assert held == {m for m in members(fresh) if point_hash(m) < tau} and held < before and len(held) > 300


def test_calibration_fits_simulated_labels(make_store: Make) -> None:
    """Fitted on half the labelled queries, the relevance of the other half's hits is calibrated: ECE
    below 0.05 for each modality's vector."""
    corpus = simulate(SIGLIP, texts=500, images=500, captioned=50, filename_captions=50, pdf_pages=50, audio=200,
                      families=60, absent_families=6, queries=160, unanswerable=0, seed=3)
    store = make_store()
    store.add(nodes(corpus))
    train, test = corpus.answerable[::2], corpus.answerable[1::2]
    report = store.calibrate([LabeledQuery(q.vector.tolist(), q.relevant, q.words) for q in train], depth=30,
                             model="sim")
    assert set(report.model.fitted) == {"text", "image", "audio"}
    assert all(fit.ece_after is not None and fit.ece_after < fit.ece_before + 1e-9 for fit in report.vectors.values())
    assert store._collection.backend.read_metadata()["mmst_calibration"]["model"] == "sim"
    by_vector: dict[str, list[tuple[float, bool]]] = {}
    for q in test:
        result = store.query(VectorStoreQuery(query_embedding=q.vector.tolist(), query_str=q.words, mode="hybrid",
                                              similarity_top_k=30), fusion="relevance")
        for node, score in zip(result.nodes, result.similarities):
            kind = corpus.kinds[node.node_id]
            vector = "audio" if kind == "audio" else "text" if kind == "text" else "image"
            by_vector.setdefault(vector, []).append((score, node.node_id in q.relevant))
    for vector, pairs in by_vector.items():
        ece = expected_calibration_error([s for s, _ in pairs], [y for _, y in pairs])
        assert ece < 0.05, (vector, ece, len(pairs))


def test_calibrate_needs_labels_and_a_collection(make_store: Make) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="does not exist yet"):
        store.calibrate([LabeledQuery([1.0, 0.0], {"a"})])
    with pytest.raises(ValueError, match="depth"):
        store.calibrate([], depth=0)
