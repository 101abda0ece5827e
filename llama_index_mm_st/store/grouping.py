"""At most N hits per document (``max_per_document``), the same on every backend.

The fused list is read deep enough and cut greedily: going down the ranking, a hit whose document
already has N hits is passed over, so later hits fill the top k. Round one reads the plain query's
own fused list completely (every candidate its branches found, with the plain query's scores: when
no document is over its cap, the answer is the plain query's); each further round reads every branch
deeper (``next_depth``: at least twice as deep, more when documents were capped fast, up to
``MAX_GROUP_DEPTH``) until the top k is full or the branches run dry. A deeper read can change RRF
scores (a hit may gain a term from a branch that ranks it far down), so the answer is the greedy cut
of the list at the first depth of that sequence that fills it.

Qdrant's server-side group-by is not used: it refills groups with further queries that exclude the
hits and documents found so far, which re-ranks every branch, so its RRF scores are of another list
than the plain query's and than Edge's (Edge has no group-by); qdrant-client's local mode instead
prefetches the whole collection. One definition, run here, keeps every backend identical.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Hashable, Optional, Sequence

from llama_index_mm_st.store.schema import REF_DOC_ID_KEY
from llama_index_mm_st.store.stages import GroupStage

if TYPE_CHECKING:
    from llama_index_mm_st.store.plan import QueryPlan

MAX_GROUP_DEPTH = 4096
"""The deepest a branch is read to fill the top k; a document with more matching chunks than this
ahead of every other can leave fewer hits than asked for."""

NO_DOCUMENT = "None"
"""What the payload's ``ref_doc_id`` holds for a node without a source document (``plan.node_payload``)."""


def _key(value: Any) -> Hashable:
    return value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True, default=str)


def document_of(hit: Any, key: Optional[str] = None) -> Hashable:
    """The document a hit belongs to: its ``key`` metadata value when set and present, else its
    source document (``ref_doc_id``), else the node itself (a node without a source is a document of its own)."""
    payload = hit.payload
    if key is not None and payload.get(key) is not None:
        return ("key", _key(payload[key]))
    ref = payload.get(REF_DOC_ID_KEY)
    if ref is not None and ref != NO_DOCUMENT:
        return ("ref", ref)
    return ("node", hit.id)


def group_hits(hits: Sequence[Any], stage: GroupStage, limit: int) -> list[Any]:
    """The first ``limit`` hits, in order, of those within their document's first ``per_document``."""
    taken: dict[Hashable, int] = {}
    kept = []
    for found in hits:
        document = document_of(found, stage.key)
        if taken.get(document, 0) >= stage.per_document:
            continue
        taken[document] = taken.get(document, 0) + 1
        kept.append(found)
        if len(kept) == limit:
            break
    return kept


def deepened(plan: "QueryPlan", depth: Optional[int]) -> "QueryPlan":
    """The plan reading every branch at least ``depth`` deep (None: as planned) and returning its whole
    fused list (as many hits as the branches may find together)."""
    branches = plan.branches if depth is None else [replace(b, limit=max(b.limit, depth)) for b in plan.branches]
    return replace(plan, branches=branches, limit=sum(b.limit for b in branches) if plan.fused else branches[0].limit)


def next_depth(read: int, hits: int, kept: int, limit: int) -> int:
    """How deep to read next, after a round read every branch ``read`` deep and its ``hits`` gave ``kept``
    of the ``limit`` hits wanted: deep enough, at the rate the documents were capped so far, to find the
    rest with room to spare, and at least twice as deep (a power of two, at most ``MAX_GROUP_DEPTH``)."""
    wanted = max(2 * read, 4 * limit, -(-3 * max(read, hits) * limit // (2 * max(kept, 1))))
    return min(1 << (wanted - 1).bit_length(), MAX_GROUP_DEPTH)


def grouped(plan: "QueryPlan", fetch: Any) -> list[Any]:
    """Run ``plan``'s group stage with ``fetch(plan) -> hits``, reading deeper until the top k is full."""
    stage = plan.group or GroupStage(per_document=plan.limit)
    depth: Optional[int] = None  # round one: the plain query's own branches
    while True:
        deep = deepened(plan, depth)
        hits = fetch(deep)
        kept = group_hits(hits, stage, plan.limit)
        read = max(b.limit for b in deep.branches)
        # Full, or every branch ran dry (the fused list holds fewer hits than the shortest branch was
        # allowed), or as deep as we read: reading deeper would find nothing more.
        if len(kept) >= plan.limit or len(hits) < min(b.limit for b in deep.branches) or read >= MAX_GROUP_DEPTH:
            return kept
        depth = next_depth(read, len(hits), len(kept), plan.limit)
