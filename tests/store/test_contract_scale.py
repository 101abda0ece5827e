"""Contract tests for the store at scale, on both backends: batched concurrent queries and the
storage options (quantization, originals on disk, float16) recorded with the collection."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store.backends.core import BackendCore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]
OPTIONS = [
    {},
    {"quantization": "int8"},
    {"quantization": "binary"},
    {"on_disk": True},
    {"vector_datatype": "float16"},
    {"quantization": "int8", "on_disk": True, "vector_datatype": "float16"},
    {"quantization": "binary", "hnsw_ef": 64, "oversampling": 2.0},  # query-time settings ride along
]


def filled(make_store: Make, rng: np.random.Generator, n: int = 40, **options: Any) -> MultimodalQdrantStore:
    store = make_store(**options)
    store.add([TextNode(id_=f"t{i}", text=f"word{i} shared", embedding=unit(rng.normal(size=DIM)),
                        metadata={"n": i}) for i in range(n)])
    return store


async def test_concurrent_aqueries_match_sync_queries(make_store: Make, rng: np.random.Generator) -> None:
    store = filled(make_store, rng)
    vectors = [unit(rng.normal(size=DIM)) for _ in range(20)]
    queries = [VectorStoreQuery(query_embedding=v, query_str="word3", mode="hybrid", similarity_top_k=5) for v in vectors]
    expected = [store.query(q) for q in queries]
    results = await asyncio.gather(*(store.aquery(q) for q in queries))
    for want, got in zip(expected, results):
        assert set(got.ids) == set(want.ids)
        assert sorted(got.similarities) == pytest.approx(sorted(want.similarities))


async def test_a_bad_query_in_a_batch_fails_alone(make_store: Make, rng: np.random.Generator) -> None:
    store = filled(make_store, rng)
    good = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=3)
    unsupported = MetadataFilters(filters=[MetadataFilter(key="n", value="x", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)])
    bad = [
        VectorStoreQuery(query_embedding=[float("nan")] * DIM),
        VectorStoreQuery(query_embedding=good.query_embedding, filters=unsupported),
    ]
    results = await asyncio.gather(
        store.aquery(good), store.aquery(bad[0]), store.aquery(good, no_such_option=1), store.aquery(bad[1]),
        store.aquery(good), return_exceptions=True,
    )
    assert isinstance(results[1], ValueError) and "non-finite" in str(results[1])
    assert isinstance(results[2], TypeError)
    assert isinstance(results[3], ValueError)
    assert results[0].ids == results[4].ids == store.query(good).ids and len(results[0].ids) == 3


async def test_an_engine_failure_in_a_batch_stays_with_its_query(
    make_store: Make, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine refuses a whole batch when one query fails; each query is then rerun on its own."""
    from llama_index_mm_st.store.backends.client import ClientBackend
    from llama_index_mm_st.store.backends.edge import EdgeBackend

    store = filled(make_store, rng)
    engine = EdgeBackend if store.local_path is not None else ClientBackend
    run = engine._run

    def refuse_batch(self: BackendCore, requests: list[Any]) -> list[list[Any]]:
        raise RuntimeError("the engine refused the batch")

    def run_one(self: BackendCore, request: Any) -> list[Any]:
        if request.limit == 7:  # the poisoned query below
            raise RuntimeError("the engine refused this query")
        return run(self, request)

    monkeypatch.setattr(engine, "_run_batch", refuse_batch)
    monkeypatch.setattr(engine, "_run", run_one)
    good = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=2)
    poisoned = VectorStoreQuery(query_embedding=good.query_embedding, similarity_top_k=7)
    results = await asyncio.gather(store.aquery(good), store.aquery(poisoned), return_exceptions=True)
    assert len(results[0].ids) == 2
    assert isinstance(results[1], RuntimeError)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_storage_options_are_recorded_and_searches_stay_exact_enough(
    make_store: Make, rng: np.random.Generator, options: dict
) -> None:
    vectors = [unit(rng.normal(size=DIM)) for _ in range(40)]
    store = make_store(**options)
    store.add([TextNode(id_=f"t{i}", text=f"word{i}", embedding=v) for i, v in enumerate(vectors)])
    schema = store.schema
    assert schema is not None
    assert (schema.quantization, schema.on_disk, schema.vector_datatype) == (
        options.get("quantization"), options.get("on_disk", False), options.get("vector_datatype", "float32"))
    for i in (0, 17, 39):  # the stored vector itself is the nearest (originals rescore the compressed copy)
        assert store.query(VectorStoreQuery(query_embedding=vectors[i], similarity_top_k=1)).ids == [f"t{i}"]
    store.close()
    reopened = make_store()  # options left out: taken from the collection
    assert reopened.schema == schema
    assert reopened.query(VectorStoreQuery(query_embedding=vectors[5], similarity_top_k=1)).ids == ["t5"]
    reopened.close()
    assert make_store(**options).schema == schema  # asking for the same options is fine


def test_a_reopen_asking_for_other_storage_options_is_refused(make_store: Make, rng: np.random.Generator) -> None:
    first = filled(make_store, rng, n=3, quantization="int8", on_disk=True)
    first.close()
    with pytest.raises(SchemaMismatchError, match="quantization 'int8' != requested 'binary'"):
        make_store(quantization="binary")
    with pytest.raises(SchemaMismatchError, match="quantization 'int8' != requested None.*on_disk True != requested False"):
        make_store(quantization=None, on_disk=False)
    with pytest.raises(SchemaMismatchError, match="vector_datatype 'float32' != requested 'float16'"):
        make_store(vector_datatype="float16")
    assert make_store(quantization="int8").count() == 3


def test_unknown_storage_option_values_are_refused(make_store: Make) -> None:
    with pytest.raises(ValueError, match="quantization"):
        make_store(quantization="int4")
    with pytest.raises(ValueError, match="vector_datatype"):
        make_store(vector_datatype="bfloat16")


def test_copy_to_carries_the_storage_options(make_store: Make, rng: np.random.Generator, tmp_path: Any) -> None:
    src = MultimodalQdrantStore(path=str(tmp_path / "src"), quantization="binary", vector_datatype="float16")
    src.add([TextNode(id_=f"t{i}", text=f"w{i}", embedding=unit(rng.normal(size=DIM))) for i in range(5)])
    dst = make_store()
    assert src.copy_to(dst) == 5
    assert (dst.schema.quantization, dst.schema.vector_datatype) == ("binary", "float16")
    own = make_store(collection_name="own", quantization="int8")  # the target's own choice wins
    src.copy_to(own)
    assert (own.schema.quantization, own.schema.vector_datatype) == ("int8", "float16")
    src.close()


def test_dense_branches_search_128_wide_by_default_and_none_leaves_the_engine_width(
    make_store: Make, rng: np.random.Generator
) -> None:
    query = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=3)
    default = filled(make_store, rng)
    assert {b.search.hnsw_ef for b in default.plan(query).branches} == {128}
    default.close()
    engine_width = filled(make_store, rng, hnsw_ef=None)
    assert all(b.search is None for b in engine_width.plan(query).branches)
    assert len(engine_width.query(query).ids) == 3


def test_a_query_searches_only_the_dense_vectors_the_edge_store_holds(tmp_path) -> None:
    """An empty audio or video branch costs the engine a filtered search; after a node of that kind
    arrives (by add, or in another store object reopening the directory) its branch is searched."""
    from llama_index.core.schema import ImageNode

    rng = np.random.default_rng(3)
    query = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=3)
    store = MultimodalQdrantStore(path=str(tmp_path), collection_name="held", show_progress=False)
    store.add([TextNode(id_="t", text="words", embedding=unit(rng.normal(size=DIM)))])
    assert [b.using for b in store.plan(query).branches] == ["text"]
    store.add([ImageNode(id_="i", image_path="/x.jpg", embedding=unit(rng.normal(size=DIM)))])
    assert [b.using for b in store.plan(query).branches] == ["text", "image"]
    assert set(store.query(query).ids) == {"t", "i"}
    store.close()
    reopened = MultimodalQdrantStore(path=str(tmp_path), collection_name="held", show_progress=False)
    assert [b.using for b in reopened.plan(query).branches] == ["text", "image"]
    reopened.close()


def _engine_vector_names(store: MultimodalQdrantStore) -> set[str]:
    """The dense vectors the engine's collection itself was made with (not our schema record)."""
    if store.local_path is not None:
        import json
        from pathlib import Path

        return set(json.loads((Path(store.local_path) / "shard" / "edge_config.json").read_text())["vectors"])
    return set(store.client.get_collection(store.collection_name).config.params.vectors)


def test_dense_vectors_makes_a_collection_without_the_left_out_modalities(
    make_store: Make, rng: np.random.Generator
) -> None:
    from llama_index.core.schema import ImageNode

    store = make_store(dense_vectors=["image", "text"], dim=DIM)
    assert store.schema.dense == ("text", "image") and _engine_vector_names(store) == {"text", "image"}
    image = ImageNode(id_="img", image_path="/a.png", embedding=unit(rng.normal(size=DIM)))
    store.add([TextNode(id_="t", text="hello world", embedding=unit(rng.normal(size=DIM))), image])
    audio = TextNode(id_="a", text="a clip", embedding=unit(rng.normal(size=DIM)),
                     metadata={"audio_path": "/clip.wav"})
    with pytest.raises(ValueError, match="no 'audio' vector.*dense_vectors"):
        store.add([audio])
    assert store.count() == 2
    found = store.query(VectorStoreQuery(query_embedding=image.embedding, query_str="hello", mode="hybrid",
                                         similarity_top_k=5))
    assert set(found.ids) == {"t", "img"}
    store.close()
    reopened = make_store()
    assert reopened.schema.dense == ("text", "image")  # left out: the collection's own
    reopened.close()
    with pytest.raises(SchemaMismatchError, match="dense vectors"):
        make_store(dense_vectors=["text", "image", "audio", "video"])


def test_dense_vectors_choices_are_checked_and_a_copy_keeps_them(
    make_store: Make, rng: np.random.Generator, tmp_path: Any
) -> None:
    with pytest.raises(ValueError, match="unknown \\['depth'\\]"):
        make_store(dense_vectors=["text", "depth"])
    with pytest.raises(ValueError, match="must include 'text'"):
        make_store(dense_vectors=["image"])
    src = MultimodalQdrantStore(path=str(tmp_path / "src"), dense_vectors=["text", "audio"])
    src.add([TextNode(id_=f"t{i}", text=f"w{i}", embedding=unit(rng.normal(size=DIM))) for i in range(3)])
    dst = make_store()
    assert src.copy_to(dst) == 3
    assert dst.schema.dense == ("text", "audio") and _engine_vector_names(dst) == {"text", "audio"}
    src.close()
