"""Where evidence lives on a LlamaIndex result, and the node postprocessor that puts it there.

A retrieved ``NodeWithScore`` carries its evidence in its node's metadata under ``EVIDENCE_KEY``, as
the JSON rows ``Region/Span/Passage.to_dict()`` give, on a copy of the node (the store's node and the
caller's are never changed). The key is listed in the node's ``excluded_llm_metadata_keys`` and
``excluded_embed_metadata_keys``, so the text an LLM or an embedding model reads stays the same;
a UI reads it from ``response.source_nodes[i].node.metadata[EVIDENCE_KEY]`` (or ``node_evidence``)
to highlight the box or play the span.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..inputs import read_query
from .kinds import Evidence, evidence_from_dict
from .locate import EvidenceQuery, EvidenceSettings, afind_evidence, find_evidence

EVIDENCE_KEY = "mmst_evidence"
"""The metadata key of a retrieved node's evidence (a list of ``to_dict()`` rows, best first per kind)."""


def with_evidence(item: NodeWithScore, evidence: Sequence[Evidence]) -> NodeWithScore:
    """A copy of ``item`` whose node carries ``evidence`` (kept out of the LLM's and the embedding's text)."""
    node = item.node.model_copy()
    node.metadata = {**(node.metadata or {}), EVIDENCE_KEY: [piece.to_dict() for piece in evidence]}
    node.excluded_llm_metadata_keys = _with_key(node.excluded_llm_metadata_keys)
    node.excluded_embed_metadata_keys = _with_key(node.excluded_embed_metadata_keys)
    return item.model_copy(update={"node": node})


def _with_key(keys: Optional[List[str]]) -> List[str]:
    keys = list(keys or [])
    return keys if EVIDENCE_KEY in keys else [*keys, EVIDENCE_KEY]


def node_evidence(item: Any) -> list[Evidence]:
    """The evidence a result (a ``NodeWithScore`` or a node) carries, as objects; [] when it has none."""
    node = getattr(item, "node", item)
    rows = (getattr(node, "metadata", None) or {}).get(EVIDENCE_KEY) or []
    return [evidence_from_dict(row) for row in rows]


class EvidenceLocator(BaseNodePostprocessor):
    """A node postprocessor that finds where each result matched (regions, spans, passages) and puts it
    on the result (``EVIDENCE_KEY``). Put it last, after any reranker: evidence is computed for the
    results that are returned, and only for them.

    ``embedding`` is the one the index was built with (it embeds the query once more, and the crops,
    windows and sentences); ``store`` (optional) lets a video frame's span reach its neighbouring frames.
    """

    settings: EvidenceSettings = Field(default_factory=EvidenceSettings, description="Work per hit and family.")
    _embedding: Any = PrivateAttr()
    _store: Any = PrivateAttr(default=None)

    def __init__(self, embedding: Any, store: Any = None, settings: Optional[EvidenceSettings] = None,
                 **kwargs: Any) -> None:
        super().__init__(settings=settings or EvidenceSettings(), **kwargs)
        self._embedding, self._store = embedding, store

    @classmethod
    def class_name(cls) -> str:
        return "EvidenceLocator"

    def _query(self, query_bundle: Optional[QueryBundle]) -> EvidenceQuery:
        if query_bundle is None:
            raise ValueError("EvidenceLocator needs the query (a QueryBundle) to find where results matched")
        return EvidenceQuery(read_query(query_bundle))

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        found = find_evidence(nodes, self._embedding, self._query(query_bundle), self.settings, self._store)
        return [with_evidence(item, evidence) for item, evidence in zip(nodes, found)]

    async def _apostprocess_nodes(self, nodes: List[NodeWithScore],
                                  query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        found = await afind_evidence(nodes, self._embedding, self._query(query_bundle), self.settings, self._store)
        return [with_evidence(item, evidence) for item, evidence in zip(nodes, found)]
