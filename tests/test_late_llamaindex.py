"""Late interaction through LlamaIndex's own classes: nodes embedded by the embedding (as an
ingestion transformation) keep their multivectors through ``VectorStoreIndex`` (which copies nodes
that already have an embedding), and its retriever's query vector carries the query's token vectors,
so the scores are exact MaxSim."""

from __future__ import annotations

import numpy as np
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode

from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore
from llama_index_mm_st.multivector import maxsim


def test_vector_store_index_and_its_retriever_use_maxsim(tiny_colqwen2_dir, tmp_path) -> None:
    embedding = MultimodalEmbedding(str(tiny_colqwen2_dir), device="cpu", precision="fp32")
    texts = ["quarterly revenue by region", "a zebra in the grass", "error code 0x80070005", "red car"]
    nodes = embedding([TextNode(id_=f"t{i}", text=t) for i, t in enumerate(texts)])
    store = MultimodalQdrantStore("li", path=str(tmp_path / "index"))
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embedding)
    assert store.schema is not None and store.schema.late_interaction
    found = index.as_retriever(similarity_top_k=4).retrieve("revenue by region")
    tokens = embedding.get_query_embedding("revenue by region").multivector
    documents = embedding.embed(texts, "text").embeddings
    expected = {f"t{i}": maxsim(tokens, d.multivector) for i, d in enumerate(documents)}
    np.testing.assert_allclose([hit.score for hit in found], [expected[hit.node.node_id] for hit in found], atol=1e-4)
    np.testing.assert_allclose([hit.score for hit in found], sorted(expected.values(), reverse=True), atol=1e-4)
    store.close()
