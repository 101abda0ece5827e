"""``PayloadIndexes``: the store's metadata indexes, declared up front or made on a key's first sight.

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields), reading the store's own ``_backend``, ``_indexed`` and settings.
"""

from __future__ import annotations

import logging
from typing import Dict, Sequence

from llama_index.core.schema import BaseNode

from llama_index_mm_st.store.schema import KEYWORD_INDEXED_KEYS, IndexKind, infer_index_kind

logger = logging.getLogger(__name__)


class PayloadIndexes:
    """Payload indexes: which keys have one, making the missing ones, and auto-indexing on insert."""

    @property
    def indexed_keys(self) -> Dict[str, IndexKind]:
        """Payload keys with an index, and its kind (the store's own keys included)."""
        return dict(self._indexed)

    def _ensure_indexes(self, wanted: Dict[str, IndexKind]) -> None:
        for key, kind in wanted.items():
            have = self._indexed.get(key)
            if have is None:
                # The store's own keys never steer a vector search, so they never get graph links.
                hnsw = self.payload_hnsw and key not in KEYWORD_INDEXED_KEYS
                self._backend.create_index(key, kind, hnsw)
                self._indexed[key] = kind
            elif have != kind:
                logger.warning("metadata key %r is indexed as %s, not %s; filters on other values scan", key, have, kind)

    def _auto_indexes(self, nodes: Sequence[BaseNode]) -> None:
        """Index metadata keys on first sight, so filters stay fast without the caller declaring them."""
        new: Dict[str, IndexKind] = {}
        indexed = self._indexed  # a private attribute read costs a pydantic __getattr__: once, not per key
        for node in nodes:
            for key, value in node.metadata.items():
                if key in indexed or key in new:
                    continue
                kind = infer_index_kind(value)
                if kind is not None:
                    new[key] = kind
        self._ensure_indexes(new)
