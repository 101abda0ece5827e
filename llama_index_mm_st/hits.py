"""Search results as plain records: what ``mmst search --json``, the server's ``/v1/search`` and an
application print or send for each hit.

Scores of different kinds don't compare (an RRF score of 0.03 is a top hit; a cosine of 0.03 is
noise), so every hit says which kind its score is (``score_kind``), and ``explain`` says it in words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional, Sequence

from llama_index.core.schema import NodeWithScore

from .evidence.kinds import Evidence, evidence_from_dict
from .evidence.nodes import EVIDENCE_KEY
from .inputs import read_node
from .media_refs import FRAME_TIME_KEY

ScoreKind = Literal["relevance", "rrf", "dbsf", "bm25", "learned_sparse", "maxsim", "mmr", "reranker"]
SCORE_KINDS: tuple[ScoreKind, ...] = ("relevance", "rrf", "dbsf", "bm25", "learned_sparse", "maxsim", "mmr",
                                      "reranker")


def score_kind(mode: str, rerankers: int, late: bool = False, fusion: str = "rrf", mmr: bool = False,
               sparse: Sequence[str] = ("bm25",)) -> ScoreKind:
    """What the final scores are: the rerankers' when there are any, else the store's for this mode.

    ``fusion`` is the store's ("relevance", "rrf" or "dbsf"); ``mmr``: an MMR stage picked the hits (its
    scores are each hit's cosine to the query, or its relevance under relevance fusion); ``sparse``: the
    index's sparse vectors (``StoreSchema.sparse_vectors``: "bm25", "learned" or both), which say what a
    sparse search's score is (one list: its own score; two: their fusion). A dense search of a
    late-interaction index reports each page's exact MaxSim. Rerankers give relevances: over a store
    that fuses by relevance every hit is a relevance ("relevance"); over another, the nodes no reranker
    reads keep the store's score ("reranker").
    """
    relevance = fusion == "relevance" and mode != "sparse" and not late
    if rerankers:
        return "relevance" if relevance else "reranker"
    if relevance:
        return "relevance"
    if mmr and mode != "sparse":
        return "mmr"
    if mode == "sparse":
        if len(sparse) > 1:
            return "dbsf" if fusion == "dbsf" else "rrf"
        return "learned_sparse" if tuple(sparse) == ("learned",) else "bm25"
    if late and mode == "dense":
        return "maxsim"
    return "dbsf" if fusion == "dbsf" else "rrf"


def _word_lists(sparse: Sequence[str]) -> str:
    names = {"bm25": "BM25", "learned": "learned sparse"}
    named = [names.get(name, name) for name in sparse]
    return f"the {' and '.join(named)} word ranking" + ("s" if len(named) > 1 else "")


def explain(kind: str, mode: str, late: bool = False, sparse: Sequence[str] = ("bm25",)) -> str:
    """One line saying what a score of this kind is (``sparse``: the index's word vectors)."""
    if kind == "relevance":
        return ("score: relevance in [0, 1], one scale for every modality (how far the hit stands above its own "
                "vector's background in this index, with its words; or a reranker's calibrated probability): about "
                "the share of hits so scored that are relevant, so a cutoff (min_relevance) of 0.5 keeps hits more "
                "likely relevant than not")
    if kind == "maxsim":
        return ("score: exact MaxSim (late interaction: each query token's best match among the page's token "
                "vectors, summed; higher is better)")
    if kind in ("rrf", "dbsf"):
        dense = "MaxSim ranking (late interaction)" if late else "dense text and image rankings"
        if mode == "sparse":
            lists = _word_lists(sparse)[len("the "):]
        else:
            lists = dense + (f" and {_word_lists(sparse)}" if mode == "hybrid" else "")
        if kind == "dbsf":
            return (f"score: DBSF fusion of the {lists} (each list's scores normalised by its mean and 3 standard "
                    "deviations, then summed; higher is better)")
        return f"score: RRF fusion of the {lists} (rank-based, higher is better; not a similarity)"
    if kind == "bm25":
        return "score: BM25 word-match score (higher is better)"
    if kind == "learned_sparse":
        return "score: the learned sparse model's word-match score (dot product of its term weights; higher is better)"
    if kind == "mmr":
        return ("score: cosine similarity to the query; the order is MMR's (relevance traded against diversity), "
                "so scores need not fall down the list")
    return ("score: the rerankers' relevance in [0, 1] (each model's output mapped to one scale); a node no reranker "
            "reads keeps the store's score and place")


@dataclass(frozen=True)
class SearchHit:
    """One result. ``id`` is the node id; ``source`` the file (or URL) it came from, with ``page`` for
    a PDF page and ``time_s`` for a video frame; ``modality`` is the node's (``inputs.read_node``).
    ``evidence``: where it matched (``evidence.Region``/``Span``/``Passage``, best first per kind), when
    the search was asked for it (``SearchRequest(evidence=True)``), else None."""

    rank: int
    id: str
    score: Optional[float]
    score_kind: ScoreKind
    modality: str
    text: str
    source: Optional[str] = None
    page: Optional[int] = None
    time_s: Optional[float] = None
    metadata: dict[str, Any] = field(default_factory=dict)
    evidence: Optional[list[Evidence]] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``node_id`` repeats ``id`` for readers of the older ``mmst search --json`` rows;
        ``evidence`` is there only when it was asked for."""
        data = asdict(self)
        data["node_id"] = self.id
        if self.evidence is None:
            del data["evidence"]
        else:
            data["evidence"] = [piece.to_dict() for piece in self.evidence]
        return data


def search_hits(results: Sequence[NodeWithScore], kind: ScoreKind) -> list[SearchHit]:
    """One ``SearchHit`` per result, ranked from 1 in the order given."""
    hits = []
    for rank, item in enumerate(results, start=1):
        node = item.node
        metadata = dict(node.metadata or {})
        rows = metadata.pop(EVIDENCE_KEY, None)
        source = (metadata.get("file_path") or getattr(node, "image_path", None) or getattr(node, "image_url", None)
                  or metadata.get("audio_path") or metadata.get("video_path"))
        time = metadata.get(FRAME_TIME_KEY)
        page = metadata.get("page")
        hits.append(SearchHit(
            rank=rank, id=node.node_id, score=None if item.score is None else float(item.score), score_kind=kind,
            modality=read_node(node).modality, text=node.get_content(),
            source=None if source is None else str(source),
            page=page if isinstance(page, int) and not isinstance(page, bool) else None,
            time_s=float(time) if isinstance(time, (int, float)) and not isinstance(time, bool) else None,
            metadata=metadata, evidence=None if rows is None else [evidence_from_dict(row) for row in rows],
        ))
    return hits
