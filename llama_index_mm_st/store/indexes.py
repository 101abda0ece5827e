"""``PayloadIndexes``: a collection's metadata indexes, declared up front or made on a key's first sight.

Part of a ``Collection``: it alone writes which keys have an index (``kinds``), and it alone asks
the backend for a new one.
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Sequence

from llama_index.core.schema import BaseNode

from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.schema import KEYWORD_INDEXED_KEYS, IndexKind, infer_index_kind

logger = logging.getLogger(__name__)


class PayloadIndexes:
    """Which payload keys have an index and of what kind; making the missing ones; auto-indexing."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._kinds: Dict[str, IndexKind] = {}

    @property
    def kinds(self) -> Dict[str, IndexKind]:
        """Payload keys with an index, and its kind (the store's own keys included); a copy."""
        return dict(self._kinds)

    def reset(self, existing: Mapping[str, IndexKind]) -> None:
        """What the collection has now: the backend's indexes of an opened one, none for a new one."""
        self._kinds = dict(existing)

    def ensure(self, wanted: Mapping[str, IndexKind], hnsw: bool) -> None:
        """An index for each wanted key that has none; ``hnsw`` adds per-value graph links to metadata keys."""
        for key, kind in wanted.items():
            have = self._kinds.get(key)
            if have is None:
                # The store's own keys never steer a vector search, so they never get graph links.
                self._backend.create_index(key, kind, hnsw and key not in KEYWORD_INDEXED_KEYS)
                self._kinds[key] = kind
            elif have != kind:
                logger.warning("metadata key %r is indexed as %s, not %s; filters on other values scan", key, have, kind)

    def on_sight(self, nodes: Sequence[BaseNode], hnsw: bool) -> None:
        """Index metadata keys on first sight, so filters stay fast without the caller declaring them."""
        new: Dict[str, IndexKind] = {}
        indexed = self._kinds
        for node in nodes:
            for key, value in node.metadata.items():
                if key in indexed or key in new:
                    continue
                kind = infer_index_kind(value)
                if kind is not None:
                    new[key] = kind
        self.ensure(new, hnsw)
