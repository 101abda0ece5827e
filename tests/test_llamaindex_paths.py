"""LlamaIndex's own first steps keep every image of the sample folder, caption or not, with the vectors our
own path gives them, and text-to-image retrieval finds them; the one path LlamaIndex makes impossible
(``MultiModalVectorStoreIndex(documents)``) fails loudly, naming the paths that work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.indices import MultiModalVectorStoreIndex

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalQdrantStore, UnsupportedIndexError

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"


@pytest.fixture(scope="module")
def embedding(tiny_clip_dir) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def reference(embedding) -> dict[str, object]:
    """Each image (and PDF page) as our own path embeds it: ``store.add(embedding(documents))``."""
    return {_key(node): node for node in embedding(ImageReader().load_data(str(DATA)))}


def _key(node: object) -> str:
    return f"{node.metadata['file_name']}#{node.metadata.get('page')}"  # type: ignore[attr-defined]


def _build(path: str, documents: list, store: MultimodalQdrantStore, embedding: MultimodalEmbedding) -> object:
    context = StorageContext.from_defaults(vector_store=store)
    if path == "VectorStoreIndex(docs)":
        return VectorStoreIndex(documents, storage_context=context, embed_model=embedding)
    if path == "VectorStoreIndex(docs, use_async=True)":
        return VectorStoreIndex(documents, storage_context=context, embed_model=embedding, use_async=True)
    if path == "VectorStoreIndex.from_documents":
        return VectorStoreIndex.from_documents(documents, storage_context=context, embed_model=embedding)
    if path == "MultiModalVectorStoreIndex.from_documents":
        return MultiModalVectorStoreIndex.from_documents(documents, storage_context=context, image_vector_store=store,
                                                         embed_model=embedding, image_embed_model=embedding)
    raise AssertionError(path)


@pytest.mark.parametrize("path", ["VectorStoreIndex(docs)", "VectorStoreIndex(docs, use_async=True)",
                                  "VectorStoreIndex.from_documents", "MultiModalVectorStoreIndex.from_documents"])
def test_every_image_is_kept_with_its_own_vectors_and_found_by_text(path, embedding, reference, capsys):
    documents = ImageReader().load_data(str(DATA))
    assert len(documents) == 6 and sum(not d.text for d in documents) == 3  # three without a caption or words
    with MultimodalQdrantStore("paths") as store:
        index = _build(path, documents, store, embedding)
        assert "missing content" not in capsys.readouterr().out  # LlamaIndex dropped nothing
        stored = {_key(node): node for node in store.get_nodes()}
        assert set(stored) == set(reference)
        assert dict(store.count_by_modality()) == {"text": 0, "image": 3, "text+image": 3, "audio": 0, "video": 0}
        for key, node in stored.items():
            ours = reference[key]
            np.testing.assert_allclose(node.embedding, ours.embedding, atol=1e-5, err_msg=key)  # the image's vector
            if ours.text_embedding is not None:  # a caption or page text keeps its own vector too
                np.testing.assert_allclose(node.text_embedding, ours.text_embedding, atol=1e-5, err_msg=key)
            else:
                assert node.text_embedding is None
        if path.startswith("MultiModal"):
            found = index.as_retriever(image_similarity_top_k=10).text_to_image_retrieve("a red circle")
        else:
            found = index.as_retriever(similarity_top_k=10).retrieve("a red circle")
        assert sorted(_key(hit.node) for hit in found) == sorted(reference)  # every image is there to be found


def test_the_multimodal_index_from_documents_fails_loudly_naming_what_works(embedding):
    documents = ImageReader().load_data(str(DATA))
    with MultimodalQdrantStore("mm") as store:
        context = StorageContext.from_defaults(vector_store=store)
        with pytest.raises(UnsupportedIndexError) as refused:
            MultiModalVectorStoreIndex(documents, storage_context=context, image_vector_store=store,
                                       embed_model=embedding, image_embed_model=embedding)
        message = str(refused.value)
        assert "MultiModalVectorStoreIndex.from_documents(" in message and "VectorStoreIndex(documents" in message
        assert "ImageNode" in message and isinstance(refused.value, TypeError)
        assert store.count() == 0


def test_nodes_embedded_our_own_way_are_written_as_they_are(embedding, monkeypatch):
    """The repair is only for vectors LlamaIndex's text and image methods made: ``embedding(nodes)`` is not
    embedded again by the store."""
    from llama_index_mm_st.embedding import MultimodalEmbedding as Embedding

    nodes = embedding(ImageReader().load_data(str(DATA)))
    calls = []
    original = Embedding.embed_nodes
    monkeypatch.setattr(Embedding, "embed_nodes", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with MultimodalQdrantStore("own") as store:
        store.add(nodes)
        assert store.count() == 6 and not calls


def test_a_pure_image_reads_like_an_image_node():
    from llama_index.core.schema import ImageNode, MetadataMode

    document = next(d for d in ImageReader().load_data(str(DATA)) if not d.text)
    node = ImageNode(image_path=str(DATA / document.metadata["file_name"]), metadata=dict(document.metadata),
                     excluded_embed_metadata_keys=document.excluded_embed_metadata_keys,
                     excluded_llm_metadata_keys=document.excluded_llm_metadata_keys)
    for mode in (MetadataMode.EMBED, MetadataMode.LLM, MetadataMode.NONE):
        assert document.get_content(mode) == node.get_content(mode), mode
    assert document.get_content(MetadataMode.EMBED) == f"file_name: {document.metadata['file_name']}"
    assert document.class_name() == "ImageDocument"  # serialised, it is LlamaIndex's own ImageDocument
