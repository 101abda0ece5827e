"""``ReaderImageDocument``: the ``ImageDocument`` that ``ImageReader`` returns, readable by LlamaIndex's
own indexes.

Two details of LlamaIndex 0.14 would lose images given as documents:

- ``VectorStoreIndex`` drops every node whose EMBED content is empty ("Some nodes are missing content",
  a bare print), and a plain ``ImageDocument`` without words has none. This document's content reads the
  way an ``ImageNode``'s does: a pure image's EMBED view is its metadata (the file name; no model reads it:
  the store embeds a node with pixels by its pixels, ``text_vectors``), so the index keeps it.
- ``MultiModalVectorStoreIndex(documents)`` routes nodes by class (``ImageNode``, ``TextNode``) and an
  ``ImageDocument`` is neither, so it keeps none of them and says nothing. Nothing of ours is called on that
  path except this EMBED read, in the index's content filter; there the document fails loudly, naming
  the paths that work (``UnsupportedIndexError``). ``from_documents`` splits documents into ``ImageNode``s
  first and works.

Serialised, it is an ``ImageDocument`` (its ``class_name``): a docstore or a store reads it back as one.
"""

from __future__ import annotations

import sys
from typing import Optional

from llama_index.core.schema import ImageDocument, MetadataMode

from ..errors import UnsupportedIndexError

MULTIMODAL_INDEX_MODULE = "llama_index.core.indices.multi_modal.base"
FRAMES_LOOKED_AT = 4
"""How far up the stack the EMBED read looks for a multimodal index building itself from documents."""

ROUTING_ADVICE = (
    "LlamaIndex's MultiModalVectorStoreIndex(nodes) keeps only ImageNode and TextNode objects, and an "
    "ImageDocument (what ImageReader returns) is neither, so it would keep none of these images. Use "
    "MultiModalVectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults("
    "vector_store=store), image_vector_store=store, embed_model=embedding, image_embed_model=embedding) "
    "(its splitter makes ImageNodes), VectorStoreIndex(documents, storage_context=..., embed_model=embedding), "
    "or store.add(embedding(documents))"
)


class ReaderImageDocument(ImageDocument):
    """An ``ImageDocument`` whose content reads like an ``ImageNode``'s, so LlamaIndex's indexes keep it."""

    def get_content(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> str:
        if metadata_mode == MetadataMode.EMBED:
            refuse_class_routing_index()
        content = super().get_content(metadata_mode)
        if content or metadata_mode == MetadataMode.NONE:
            return content
        return self.get_metadata_str(metadata_mode).strip()  # a pure image: its metadata, as an ImageNode reads


def refuse_class_routing_index() -> None:
    """Raise ``UnsupportedIndexError`` when the caller is ``MultiModalVectorStoreIndex`` building itself
    from these documents (its content filter reads each node's EMBED content first)."""
    module = sys.modules.get(MULTIMODAL_INDEX_MODULE)
    if module is None:  # never imported: it can't be building
        return
    index_class = getattr(module, "MultiModalVectorStoreIndex", None)
    frame: Optional[object] = sys._getframe(2)
    for _ in range(FRAMES_LOOKED_AT):
        if frame is None or index_class is None:
            return
        caller = frame.f_locals.get("self")  # type: ignore[attr-defined]
        if isinstance(caller, index_class) and frame.f_code.co_name == "build_index_from_nodes":  # type: ignore[attr-defined]
            raise UnsupportedIndexError(ROUTING_ADVICE)
        frame = frame.f_back  # type: ignore[attr-defined]
