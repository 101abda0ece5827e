"""The store inside LlamaIndex, with MultimodalEmbedding on the tiny random CLIP."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import ImageNode, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.store import MultimodalQdrantStore

TEXTS = ["a red bicycle leaning on a wall", "quarterly revenue grew nine percent", "recipe for lemon tart", "error code E1234 on boot"]


@pytest.fixture(scope="module")
def embed(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(model_name=str(tiny_clip_dir), device="cpu", precision="fp32")


def test_vector_store_index(embed: MultimodalEmbedding, tmp_path: Path) -> None:
    store = MultimodalQdrantStore(path=str(tmp_path), hybrid=True)
    docs = [Document(text=t, metadata={"n": i}, id_=f"doc{i}") for i, t in enumerate(TEXTS)]
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed)
    assert store.count() == 4
    # Every list ranks all four documents, so the winner can't be a tie: TEXTS[2] is BM25's only match
    # (1/61) and holds some dense rank too, while any dense winner without its words scores 1/61 alone.
    hits = index.as_retriever(similarity_top_k=4).retrieve(TEXTS[2])
    assert hits[0].node.get_content() == TEXTS[2] and hits[0].score > hits[1].score
    filtered = index.as_retriever(
        similarity_top_k=4, filters=MetadataFilters(filters=[MetadataFilter(key="n", value=3)])
    ).retrieve("anything at all")
    assert [h.node.ref_doc_id for h in filtered] == ["doc3"]
    index.delete_ref_doc("doc1")
    assert store.count() == 3 and {n.ref_doc_id for n in store.get_nodes()} == {"doc0", "doc2", "doc3"}
    store.close()


def test_multimodal_index_with_one_store_for_text_and_images(
    embed: MultimodalEmbedding, image_files: dict[str, Path], tmp_path: Path
) -> None:
    store = MultimodalQdrantStore(path=str(tmp_path))
    context = StorageContext.from_defaults(vector_store=store, image_store=store)
    images = [ImageNode(id_=f"img-{k}", image_path=str(p), metadata={"file_name": p.name}) for k, p in image_files.items() if k in ("jpeg", "png", "webp")]
    texts = [TextNode(id_=f"txt-{i}", text=t) for i, t in enumerate(TEXTS)]
    index = MultiModalVectorStoreIndex(
        texts + images, storage_context=context, embed_model=embed, image_embed_model=embed, image_vector_store=store
    )
    assert store.count() == len(texts) + len(images)
    stored = {n.node_id: n for n in store.get_nodes()}
    assert stored["img-png"].image_path == str(image_files["png"])
    retriever = index.as_retriever(similarity_top_k=2, image_similarity_top_k=2)
    found = retriever.image_to_image_retrieve(str(image_files["png"]))
    assert "img-png" in {h.node.node_id for h in found}
    query = VectorStoreQuery(query_embedding=embed.get_image_embedding(str(image_files["webp"])), similarity_top_k=1)
    image_only = store.query(query, modality="image")
    assert image_only.ids == ["img-webp"]
    # The images come back from the one store (by relevance a random model's text query need not rank an
    # image in a top 2 of this mixed store: read every node, and some are images).
    everything = index.as_retriever(similarity_top_k=2, image_similarity_top_k=len(texts) + len(images))
    assert any(isinstance(h.node, ImageNode) for h in everything.text_to_image_retrieve("a photo"))
    store.close()


async def test_ingestion_pipeline_writes_both_vectors(embed: MultimodalEmbedding, image_files: dict[str, Path]) -> None:
    store = MultimodalQdrantStore()
    captioned = ImageNode(id_="cap", image_path=str(image_files["jpeg"]), text="a caption about E1234")
    nodes = [TextNode(id_=f"t{i}", text=t) for i, t in enumerate(TEXTS)] + [captioned]
    pipeline = IngestionPipeline(transformations=[embed], vector_store=store)
    await pipeline.arun(nodes=nodes)
    assert await store.acount() == 5
    cap_text = embed.get_text_embedding("a caption about E1234")
    by_text = store.query(VectorStoreQuery(query_embedding=cap_text, similarity_top_k=1), modality="image")
    assert by_text.ids == ["cap"]  # found through its text vector, not only its image vector
    assert store.count(MetadataFilters(filters=[])) == 5
    store.close()


def test_llama_index_multimodal_recipe_indexes_every_image(embed: MultimodalEmbedding, tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    """LlamaIndex's own recipe over ImageReader documents: every image reaches the image store, pure
    images included (LlamaIndex drops nodes whose EMBED content is empty), while a captioned image's
    embedded text stays its caption alone (no bookkeeping)."""
    from llama_index.core.schema import MetadataMode

    from llama_index_mm_st import ImageReader

    monkeypatch.setenv("MMST_CACHE_DIR", str(tmp_path / "cache"))
    folder = Path(__file__).resolve().parents[2] / "examples" / "data"
    documents = ImageReader().load_data(str(folder))
    images = [d for d in documents if d.metadata.get("file_name", "").endswith((".png", ".jpg", ".webp"))]
    assert len(images) == 4 and len(documents) > len(images)  # 4 images (one captioned) and PDF pages
    text_store = MultimodalQdrantStore("texts", path=str(tmp_path / "t"))
    image_store = MultimodalQdrantStore("images", path=str(tmp_path / "i"))
    context = StorageContext.from_defaults(vector_store=text_store, image_store=image_store)
    MultiModalVectorStoreIndex.from_documents(documents, storage_context=context, embed_model=embed,
                                              image_embed_model=embed)
    assert "missing content" not in capsys.readouterr().out
    assert image_store.count() == len(documents)
    stored_names = {n.metadata.get("file_name") for n in image_store.get_nodes()}
    assert {d.metadata["file_name"] for d in images} <= stored_names
    captioned = next(d for d in documents if d.text and d.metadata["file_name"] == "green_triangle.jpg")
    assert captioned.get_content(metadata_mode=MetadataMode.EMBED) == captioned.text
    text_store.close()
    image_store.close()
