"""What only the qdrant-client backend has: url/api_key wiring, cluster settings, caller-owned clients."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.schema import TextNode
from qdrant_client import QdrantClient

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store.backends import choose as backend_choice


def test_url_store_takes_api_key_from_env_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    def fake_client(**kwargs: Any) -> QdrantClient:
        made.update(kwargs)
        return QdrantClient(":memory:")

    monkeypatch.setattr(backend_choice, "QdrantClient", fake_client)
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key")
    store = MultimodalQdrantStore(url="https://qdrant.example:6333", client_kwargs={"timeout": 5})
    assert made == {"url": "https://qdrant.example:6333", "api_key": "s3cret-key", "timeout": 5}
    assert "s3cret" not in repr(store) and "s3cret" not in store.model_dump_json()
    MultimodalQdrantStore(url="https://qdrant.example:6333", api_key="explicit")
    assert made["api_key"] == "explicit"


class RecordingClient(QdrantClient):
    """Local mode ignores cluster settings, so record what a server would have been sent."""

    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:
        self.create_kwargs = kwargs
        return super().create_collection(collection_name, **kwargs)


def test_cluster_settings_apply_at_creation() -> None:
    client = RecordingClient(":memory:")
    store = MultimodalQdrantStore("sharded", client=client, shard_number=3, replication_factor=2, write_consistency_factor=2)
    store.add([TextNode(text="x", embedding=[1.0, 0.0])])
    sent = client.create_kwargs
    assert (sent["shard_number"], sent["replication_factor"], sent["write_consistency_factor"]) == (3, 2, 2)
    params = client.get_collection("sharded").config.params
    assert set(params.vectors) == {"text", "image", "audio", "video"} and params.vectors["image"].size == 2
    assert params.sparse_vectors["bm25"].modifier.value == "idf"


def test_a_callers_client_stays_open_after_close() -> None:
    client = QdrantClient(":memory:")
    store = MultimodalQdrantStore(client=client)
    store.add([TextNode(text="x", embedding=[1.0, 0.0])])
    store.close()
    assert client.count("mmst").count == 1


def test_copy_to_moves_an_edge_store_to_a_server_with_vectors(tmp_path) -> None:
    from llama_index.core.schema import ImageNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    src = MultimodalQdrantStore(path=str(tmp_path), batch_size=3)
    nodes = [TextNode(id_=f"t{i}", text=f"word{i} common", embedding=[1.0, float(i)], metadata={"n": i}) for i in range(7)]
    nodes.append(ImageNode(id_="img", image_path="/a.png", text="cap", embedding=[0.0, 1.0], text_embedding=[1.0, 0.0]))
    src.add(nodes)
    src.update_metadata({"model": "openai/clip-vit-base-patch32", "dim": 2})
    client = QdrantClient(":memory:")
    dst = MultimodalQdrantStore("moved", client=client)
    assert src.copy_to(dst) == 8
    assert dst.get_metadata() == {"model": "openai/clip-vit-base-patch32", "dim": 2}  # what mmst reads
    assert dst.count() == 8 and dst.get_nodes(["img"])[0].image_path == "/a.png"
    q = VectorStoreQuery(query_embedding=[0.0, 1.0], query_str="word3", mode="hybrid", similarity_top_k=3)
    assert set(dst.query(q).ids) == set(src.query(q).ids)  # dense and bm25 vectors came along
    assert dst.query(VectorStoreQuery(query_str="word3", mode="sparse")).ids == ["t3"]
    german = MultimodalQdrantStore("de", client=client, bm25_language="german", dim=2)
    with pytest.raises(SchemaMismatchError, match="bm25 language"):
        src.copy_to(german)
    src.close()


def test_a_server_store_never_loads_the_edge_backend() -> None:
    """Only BM25 tokenising comes from qdrant_edge when the store talks to a Qdrant server."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from qdrant_client import QdrantClient\n"
        "from llama_index_mm_st import MultimodalQdrantStore\n"
        "store = MultimodalQdrantStore('c', client=QdrantClient(':memory:'), dim=4)\n"
        "print('llama_index_mm_st.store.backends.edge' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_server_metadata_is_the_callers_and_keeps_the_schemas_language() -> None:
    client = QdrantClient(":memory:")
    store = MultimodalQdrantStore("meta", client=client, bm25_language="german", dim=2)
    assert store.get_metadata() == {}  # the language the schema records is not the caller's metadata
    store.update_metadata({"model": "m", "mmst_bm25_language": "english"})  # the schema's key can't be overwritten
    assert store.get_metadata() == {"model": "m"}
    assert MultimodalQdrantStore("meta", client=client, bm25_language="german").get_metadata() == {"model": "m"}
    with pytest.raises(SchemaMismatchError, match="bm25 language"):
        MultimodalQdrantStore("meta", client=client)  # english, the default
