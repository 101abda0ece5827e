"""Late interaction in the base layer: a node's multivector and the MaxSim score.

A late-interaction model (ColPali, ColQwen2, ColModernVBert) embeds a page as one vector per
patch or token. The embedding attaches that matrix to the node; the store and the reranker read it.
It lives here, in the base, so the components never import each other.

**The carrier.** The matrix travels in the node's pydantic private state
(``node.__pydantic_private__[MULTIVECTOR_KEY]``), not in ``metadata`` and not in a field:

- pydantic never serialises private state, so the matrix can't leak into a payload, a docstore,
  LlamaIndex's ``node.to_dict()`` or an LLM prompt (its text or metadata are what those read);
- it follows the node object itself: ``model_copy`` (which the store uses) keeps it, and two nodes
  with the same id from two runs can't be confused, as they could in a side table keyed by id, and
  nothing outlives the node (a side table would grow until someone cleared it);
- it does not survive pickling or ``to_dict``: what sends nodes to another process ships the matrix
  beside the node (the Ray path's ``distributed.embed.pack_node``).

``node.embedding`` stays an ordinary pooled vector (``pooled``), so every LlamaIndex consumer works.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

MULTIVECTOR_KEY = "_mmst_multivector"
"""The private-state key of a node's multivector."""

LATE_INTERACTION_ARCHITECTURES = frozenset({"ColPaliForRetrieval", "ColQwen2ForRetrieval", "ColModernVBertForRetrieval"})
"""Late-interaction checkpoints by their ``config.json`` architecture (transformers 5's retrievers,
which sentence-transformers loads as a ``MultiVectorEncoder``). The embedding and the reranker both
choose by this table, as data: a new family is one entry."""

NATIVE_CHECKPOINTS = {
    "vidore/colqwen2-v1.0": "vidore/colqwen2-v1.0-hf",
    "vidore/colpali-v1.3": "vidore/colpali-v1.3-hf",
    "ModernVBERT/colmodernvbert": "ModernVBERT/colmodernvbert-merged",
}
"""The ids people know are colpali-engine releases (PEFT adapters, no ``config.json``); the same
weights in transformers' own format, which sentence-transformers loads, are published beside them."""


def native_checkpoint(name: str) -> str:
    """The transformers-native id of a known colpali-engine release; any other name unchanged."""
    return NATIVE_CHECKPOINTS.get(name, name)


def attach_multivector(node: Any, matrix: np.ndarray) -> None:
    """Give ``node`` its multivector (rows = tokens or patches), replacing any earlier one."""
    private = dict(getattr(node, "__pydantic_private__", None) or {})
    private[MULTIVECTOR_KEY] = np.ascontiguousarray(matrix, dtype=np.float32)
    object.__setattr__(node, "__pydantic_private__", private)


def node_multivector(node: Any) -> Optional[np.ndarray]:
    """The multivector a late-interaction embedding attached to ``node``, else the one its
    ``embedding`` carries when that is still a ``PooledVector`` (set without pydantic's validation,
    which would copy it into a plain list), else None."""
    private = getattr(node, "__pydantic_private__", None) or {}
    found = private.get(MULTIVECTOR_KEY)
    if found is None:
        found = getattr(getattr(node, "embedding", None), "multivector", None)
    return found


def pooled(matrix: np.ndarray) -> np.ndarray:
    """One vector for a multivector: the L2-normalised mean of its rows. It is what a single-vector
    consumer (and the store's prefetch) ranks by; MaxSim over the rows is the real score."""
    mean = np.asarray(matrix, dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """Sum over query rows of the best dot product with any document row (ColBERT's MaxSim)."""
    return float((np.asarray(query, np.float32) @ np.asarray(document, np.float32).T).max(axis=1).sum())


def maxsim_many(query: np.ndarray, documents: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim of one query against each document, in the documents' order."""
    return np.array([maxsim(query, document) for document in documents], dtype=np.float64)


def check_multivector(matrix: Any, dim: int, what: str) -> np.ndarray:
    """A multivector as a float32 (tokens, dim) matrix; an empty, wrong-sized or non-finite one is refused, named by ``what``."""
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{what}: a multivector must be a non-empty (tokens, {dim}) matrix, got shape {array.shape}")
    if array.shape[1] != dim:
        raise ValueError(f"{what}: multivector rows have {array.shape[1]} dimensions, the store has {dim}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the multivector has a non-finite value")
    return array


class PooledVector(list):  # type: ignore[type-arg]
    """A pooled vector (a plain ``list`` of floats, what LlamaIndex expects of an embedding) that also
    carries its item's ``multivector``. A late-interaction embedding returns its query vectors this
    way, so a LlamaIndex retriever hands the store the multivector inside ``query_embedding``
    without knowing about it; anything else just sees the list."""

    multivector: np.ndarray

    def __init__(self, values: Sequence[float], multivector: np.ndarray) -> None:
        super().__init__(values)
        self.multivector = np.ascontiguousarray(multivector, dtype=np.float32)


def query_multivector(query_embedding: Any) -> Optional[np.ndarray]:
    """The multivector a query vector carries (``PooledVector``), or that it is (a 2-D array or list of rows)."""
    carried = getattr(query_embedding, "multivector", None)
    if carried is not None:
        return carried
    if query_embedding is not None and len(query_embedding) and isinstance(query_embedding[0], (list, tuple, np.ndarray)):
        return np.asarray(query_embedding, dtype=np.float32)
    return None
