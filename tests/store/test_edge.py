"""What only the embedded Edge backend has: files, a process lock, payload indexes, optimize()."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from qdrant_client import models

from llama_index_mm_st.errors import SchemaMismatchError, StoreLockedError
from llama_index_mm_st.store import MultimodalQdrantStore, UnsupportedFilterError
from llama_index_mm_st.store.backends.edge_filters import to_edge_filter
from tests.store.conftest import DIM, unit

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from llama_index.core.schema import ImageNode, TextNode
    from llama_index_mm_st.store import MultimodalQdrantStore
    store = MultimodalQdrantStore(path=sys.argv[1])
    vec = [1.0] + [0.0] * 15
    store.add([
        TextNode(id_="t1", text="kept across restarts", embedding=vec, metadata={"year": 2021}),
        ImageNode(id_="i1", image_path="/data/cat.jpg", text="a cat", embedding=vec, text_embedding=vec),
    ])
    if sys.argv[2] == "hold":
        print("ready", flush=True)
        sys.stdin.readline()
    store.close()
    """
)


def run_writer(path: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_store_survives_a_process_restart(tmp_path: Path) -> None:
    writer = run_writer(tmp_path, "exit")
    assert writer.wait(timeout=120) == 0
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        assert store.count() == 2
        text, image = store.get_nodes(["t1", "i1"])
        assert text.get_content() == "kept across restarts" and text.metadata == {"year": 2021}
        assert isinstance(image, ImageNode) and image.image_path == "/data/cat.jpg" and image.text == "a cat"
        hit = store.query(VectorStoreQuery(query_str="restarts", mode="sparse"))
        assert hit.ids == ["t1"]


def test_a_second_process_gets_store_locked_error(tmp_path: Path) -> None:
    holder = run_writer(tmp_path, "hold")
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="already open"):
            MultimodalQdrantStore(path=str(tmp_path))
    finally:
        holder.communicate("\n", timeout=60)
    with MultimodalQdrantStore(path=str(tmp_path)) as store:  # released on close
        assert store.count() == 2


def test_default_is_a_temporary_store_removed_on_close(rng: np.random.Generator) -> None:
    store = MultimodalQdrantStore()
    store.add([TextNode(text="x", embedding=unit(rng.normal(size=DIM)))])
    shard_dir = Path(store.local_path)
    assert shard_dir.exists() and store.count() == 1
    store.close()
    assert not shard_dir.exists()


def test_metadata_keys_get_typed_payload_indexes_on_insert(tmp_path: Path, rng: np.random.Generator) -> None:
    with MultimodalQdrantStore(path=str(tmp_path), payload_indexes={"sku": "keyword"}) as store:
        store.add(
            [
                TextNode(
                    text="x",
                    embedding=unit(rng.normal(size=DIM)),
                    metadata={"year": 2020, "score": 0.5, "lang": "en", "tags": ["a"], "ok": True, "nested": {"a": 1}},
                )
            ]
        )
        schema = store.client.info().payload_schema
        kinds = {key: str(info.data_type) for key, info in schema.items()}
        # no per-value graph links by default: optimize() builds much faster (see payload_hnsw)
        assert not any(info.params.enable_hnsw for info in schema.values())
    assert kinds == {
        "modality": "PayloadSchemaType.Keyword",
        "ref_doc_id": "PayloadSchemaType.Keyword",
        "sku": "PayloadSchemaType.Keyword",
        "year": "PayloadSchemaType.Float",
        "score": "PayloadSchemaType.Float",
        "lang": "PayloadSchemaType.Keyword",
        "tags": "PayloadSchemaType.Keyword",
        "ok": "PayloadSchemaType.Bool",
    }


def test_optimize_builds_the_vector_index(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = rng.normal(size=(3000, DIM))
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        store.add([TextNode(id_=f"n{i}", text=f"w{i}", embedding=unit(v)) for i, v in enumerate(vectors)], show_progress=False)
        store.optimize()
        assert store.client.info().points_count == 3000
        assert store.query(VectorStoreQuery(query_embedding=unit(vectors[42]), similarity_top_k=1)).ids == ["n42"]


def test_boolean_match_is_refused_clearly() -> None:
    flt = models.Filter(must=[models.FieldCondition(key="ok", match=models.MatchValue(value=True))])
    with pytest.raises(UnsupportedFilterError, match="boolean match"):
        to_edge_filter(flt)


def test_backend_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only one of path, url or client"):
        MultimodalQdrantStore(path=str(tmp_path), url="http://localhost:6333")
    with pytest.raises(ValueError, match="apply to a Qdrant server"):
        MultimodalQdrantStore(path=str(tmp_path), shard_number=2)
    with pytest.raises(TypeError, match="unexpected argument 'hybird' \\(did you mean 'hybrid'\\?\\)"):
        MultimodalQdrantStore(path=str(tmp_path), hybird=True)
    with pytest.raises(ValueError, match="rrf_weights keys"):
        MultimodalQdrantStore(path=str(tmp_path), rrf_weights={"dense": 2.0})
    with pytest.raises(ValueError, match="payload_indexes"):
        MultimodalQdrantStore(path=str(tmp_path), payload_indexes={"x": "number"})


def test_payload_hnsw_opt_in_applies_to_metadata_keys_only(tmp_path: Path, rng: np.random.Generator) -> None:
    with MultimodalQdrantStore(path=str(tmp_path), payload_hnsw=True) as store:
        store.add([TextNode(text="x", embedding=unit(rng.normal(size=DIM)), metadata={"lang": "en"})])
        graph = {key: info.params.enable_hnsw for key, info in store.client.info().payload_schema.items()}
    assert graph == {"modality": False, "ref_doc_id": False, "lang": True}


def test_a_schema_record_without_storage_options_still_opens(tmp_path: Path, rng: np.random.Generator) -> None:
    """Stores written before the storage options existed hold float32 vectors in RAM, unquantized."""
    import json

    store = MultimodalQdrantStore(path=str(tmp_path))
    store.add([TextNode(id_="t0", text="old", embedding=unit(rng.normal(size=DIM)))])
    record = Path(store.local_path) / "mmst_schema.json"
    store.close()
    old = {k: v for k, v in json.loads(record.read_text()).items() if k not in ("quantization", "on_disk", "vector_datatype")}
    record.write_text(json.dumps(old))
    reopened = MultimodalQdrantStore(path=str(tmp_path))
    assert reopened.count() == 1
    assert (reopened.schema.quantization, reopened.schema.on_disk, reopened.schema.vector_datatype) == (None, False, "float32")
    reopened.close()


BULK_WRITER = textwrap.dedent(
    """
    import sys
    from llama_index.core.schema import TextNode
    from llama_index_mm_st.store import MultimodalQdrantStore
    store = MultimodalQdrantStore(path=sys.argv[1], wal=False)
    def nodes(start):
        return [TextNode(id_=f"n{i}", text=f"w{i}", embedding=[1.0, float(i)] + [0.0] * 14) for i in range(start, start + 50)]
    store.add(nodes(0))
    store.flush()
    print("checkpoint", flush=True)
    store.add(nodes(50))
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


def test_a_bulk_build_without_wal_keeps_its_checkpoints_through_kill_9(tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", BULK_WRITER, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout.readline().strip() == "checkpoint"
    assert writer.stdout.readline().strip() == "ready"
    writer.kill()  # SIGKILL: no close(), no flush
    writer.wait()
    with pytest.raises(SchemaMismatchError, match="wal False != requested True"):
        MultimodalQdrantStore(path=str(tmp_path), wal=True)  # the engine can't add a WAL to a shard later
    store = MultimodalQdrantStore(path=str(tmp_path))  # opens, still without a WAL
    assert store.schema.wal is False
    kept = {n.node_id for n in store.get_nodes()}
    assert {f"n{i}" for i in range(50)} <= kept  # everything up to the checkpoint survived
    store.add([TextNode(id_=f"n{i}", text=f"w{i}", embedding=[1.0, float(i)] + [0.0] * 14) for i in range(50, 100)])
    assert store.count() == 100  # the re-run ends with exactly the full set
    store.close()


def test_wal_off_is_an_edge_option_only() -> None:
    from qdrant_client import QdrantClient

    with pytest.raises(ValueError, match="wal=False applies to an Edge store"):
        MultimodalQdrantStore(client=QdrantClient(":memory:"), wal=False)
