"""Retrieval quality on the user's own data: recall@k, nDCG@10 and MRR@10 over a qrels file.

A qrels file is JSON Lines, one query per line::

    {"query": "a red circle", "relevant": ["data/red_circle.png"]}
    {"image": "queries/sky.jpg", "relevant": ["data/night_sky.webp", "3f2c...node id"]}
    {"query": "revenue table", "relevant": ["data/report.pdf#page=2"]}

``query`` is the text, ``image`` (or ``audio``/``video``) an example to search by (both: the example
drives the dense search, the text the words); ``relevant`` lists what should be found: node ids, or
source files (a hit counts when it came from that file, a PDF's ``#page=N`` when it is that page).
Relative paths are read from the qrels file's folder. Each relevant item counts once, at the rank of
its first hit (ten chunks of one relevant file are one find, not ten). ``"relevant": []`` marks a query
the index holds nothing relevant for: it counts only toward abstention (a search should say so).

With binary relevance and rank r counted from 1 among the first k hits:
- recall@k: the share of the relevant items found in the top k;
- nDCG@10: sum of 1/log2(r + 1) over the first finds, divided by the same sum for a perfect ranking
  (``min(len(relevant), 10)`` finds at ranks 1, 2, ...);
- MRR@10: 1/r of the first find in the top 10, else 0.
These equal LlamaIndex's ``RetrieverEvaluator`` metrics (``recall``, ``ndcg``, ``mrr``) on the same
lists where those are defined alike: node-id qrels with at most 10 relevant ids (LlamaIndex's nDCG
divides by all relevant items, not the first 10).

With relevance scores (``fusion="relevance"``) a result also says how well they mean what they say:
ECE per modality (``relevance.expected_calibration_error``) and abstention (``EvalResult.abstention``).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Union

from .fetch import is_url
from .hits import SearchHit, search_hits
from .relevance import abstention_auc, coverage_precision, expected_calibration_error
from .search import SearchSetup

EXAMPLE_KINDS = ("image", "audio", "video")
NDCG_AT = MRR_AT = 10
PAGE_MARK = "#page="

__all__ = ["EvalResult", "QueryMetrics", "Qrel", "evaluate", "load_qrels", "metrics_of_ranks", "parse_qrels"]


@dataclass(frozen=True)
class Relevant:
    """One relevant item as written (``raw``: a node id, path or URL) and, for a path, the file it names
    (absolute) and the page (``#page=N``)."""

    raw: str
    path: Optional[str] = None
    page: Optional[int] = None

    def matches(self, hit: SearchHit) -> bool:
        if hit.id == self.raw:
            return True
        if hit.source is None:
            return False
        same = hit.source == self.raw if is_url(hit.source) else self.path is not None and _norm(hit.source) == self.path
        return same and (self.page is None or hit.page == self.page)


@dataclass(frozen=True)
class Qrel:
    """One query of a qrels file: its text and/or example, the items that should be found, its line."""

    query: Optional[str]
    relevant: tuple[Relevant, ...]
    example: Optional[str] = None
    example_kind: Optional[str] = None
    line: int = 0


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


def _relevant(raw: Any, base: Path, where: str) -> Relevant:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{where}: every relevant item must be a non-empty string (a node id, path or URL), got {raw!r}")
    if is_url(raw):
        return Relevant(raw)
    name, page = raw, None
    if PAGE_MARK in raw:
        name, _, number = raw.rpartition(PAGE_MARK)
        if not number.isdigit() or int(number) < 1:
            raise ValueError(f"{where}: {raw!r}: a page is written '#page=N' with N from 1")
        page = int(number)
    resolved = Path(os.path.expanduser(name))
    return Relevant(raw, _norm(str(resolved if resolved.is_absolute() else base / resolved)), page)


def parse_qrels(lines: Iterable[str], base: Union[str, Path] = ".", label: str = "qrels") -> List[Qrel]:
    """Qrels from JSON lines (blank lines skipped); relative paths are read from ``base``. A bad line
    raises a ``ValueError`` naming it and the reason."""
    base = Path(base)
    out = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{label} line {number}"
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: each line is an object with 'query' and/or 'image', and 'relevant'")
        unknown = sorted(set(row) - {"query", "relevant", *EXAMPLE_KINDS})
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; a line has 'query', 'image' (or 'audio'/'video') "
                             "and 'relevant'")
        query = row.get("query")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise ValueError(f"{where}: 'query' must be non-empty text")
        examples = [kind for kind in EXAMPLE_KINDS if row.get(kind) is not None]
        if len(examples) > 1:
            raise ValueError(f"{where}: one example per query, got {examples}")
        if query is None and not examples:
            raise ValueError(f"{where}: give 'query' text, an 'image' (or 'audio'/'video') to search by, or both")
        example = kind = None
        if examples:
            kind, example = examples[0], row[examples[0]]
            if not isinstance(example, str) or not example:
                raise ValueError(f"{where}: {kind!r} must be a path or URL")
            if not is_url(example):
                example = str(Path(example) if Path(example).is_absolute() else base / example)
                if not os.path.exists(example):
                    raise ValueError(f"{where}: the query {kind} {row[kind]!r} does not exist ({example})")
        relevant = row.get("relevant")
        if not isinstance(relevant, list):
            raise ValueError(f"{where}: 'relevant' must be a list of node ids or paths ([] for a query the index "
                             "holds nothing relevant for)")
        items = tuple(dict.fromkeys(_relevant(item, base, where) for item in relevant))
        out.append(Qrel(query, items, example, kind, number))
    if not out:
        raise ValueError(f"{label} holds no queries")
    return out


def load_qrels(path: Union[str, Path]) -> List[Qrel]:
    """The queries of a qrels JSONL file (relative paths in it are read from its folder)."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        return parse_qrels(handle, path.parent, str(path))


def first_ranks(hits: Sequence[SearchHit], relevant: Sequence[Relevant]) -> List[int]:
    """The 1-based rank at which each relevant item is first found (items not found are left out), in rank order."""
    ranks = []
    for item in relevant:
        rank = next((h.rank for h in hits if item.matches(h)), None)
        if rank is not None:
            ranks.append(rank)
    return sorted(ranks)


@dataclass(frozen=True)
class QueryMetrics:
    """One query's figures: ``ranks`` where relevant items were first found; ``skipped`` when the
    configuration can't run it (a sparse search of a query with no words scores 0). ``confidence``: its
    best hit's relevance (relevance scores only), and ``top_relevant`` whether that hit is relevant; a
    query with nothing relevant (``answerable`` False) has no recall, nDCG or MRR."""

    line: int
    recall: float
    ndcg: float
    mrr: float
    ranks: tuple[int, ...]
    ms: float
    skipped: bool = False
    answerable: bool = True
    confidence: Optional[float] = None
    top_relevant: bool = False


def metrics_of_ranks(ranks: Sequence[int], relevant: int, k: int) -> tuple[float, float, float]:
    """(recall@k, nDCG@10, MRR@10) of first-find ranks among ``relevant`` items."""
    recall = sum(1 for r in ranks if r <= k) / relevant
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(relevant, NDCG_AT) + 1))
    ndcg = sum(1.0 / math.log2(r + 1) for r in ranks if r <= NDCG_AT) / ideal
    mrr = next((1.0 / r for r in sorted(ranks) if r <= MRR_AT), 0.0)
    return recall, ndcg, mrr


@dataclass(frozen=True)
class EvalResult:
    """Means over every query that has something relevant (a skipped query counts 0), at ``k`` (nDCG and
    MRR at 10), with the median time of a query and each query's own figures.

    With relevance scores (``score_kind`` "relevance"), also: ``ece``, the calibration error of the hits'
    relevance per modality (each hit labelled by the qrels); and ``abstention``: ``nauc`` (MTEB's
    normalised area under nDCG@10 against coverage when the least confident queries are left
    unanswered first), ``coverage``/``precision`` at ``cut`` (the share of queries whose best hit reaches
    it, and of those the share whose best hit is relevant), and ``silent``, the share of the queries
    with nothing relevant that get no hit at ``cut``."""

    k: int
    recall: float
    ndcg: float
    mrr: float
    queries: int
    skipped: int
    p50_ms: float
    per_query: List[QueryMetrics] = field(default_factory=list)
    ece: dict[str, float] = field(default_factory=dict)
    abstention: dict[str, float] = field(default_factory=dict)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        data = {f"recall@{self.k}": self.recall, f"ndcg@{NDCG_AT}": self.ndcg, f"mrr@{MRR_AT}": self.mrr,
                "queries": self.queries, "skipped": self.skipped, "p50_ms": self.p50_ms}
        if self.ece:
            data["ece"] = dict(self.ece)
        if self.abstention:
            data["abstention"] = dict(self.abstention)
        if per_query:
            data["per_query"] = [asdict(m) for m in self.per_query]
        return data


def _can_run(retriever: Any, qrel: Qrel) -> bool:
    """A sparse (words only) search needs query text."""
    mode = retriever.request.mode if isinstance(retriever, SearchSetup) else getattr(retriever, "mode", None)
    return not (mode == "sparse" and qrel.query is None)


def _retrieve(retriever: Any, qrel: Qrel, top_k: int) -> tuple[list[Any], str, Optional[float]]:
    """The hits for one qrel, the kind of their scores, and (a search that abstained) the dropped best
    hit's score: a ``SearchSetup`` runs the search step with ``top_k`` (what ``mmst search --top-k``
    returns); a retriever returns what it returns."""
    example = {qrel.example_kind: qrel.example} if qrel.example else {}
    if isinstance(retriever, SearchSetup):
        result = retriever.run(qrel.query, top_k=top_k, **example)
        return result.nodes, result.score_kind, result.best.score if result.best is not None else None
    if hasattr(retriever, "search"):  # MultimodalRetriever: text, an example, or both
        return retriever.search(qrel.query, **example), "rrf", None
    if qrel.example is not None:
        raise ValueError(f"qrels line {qrel.line}: a query by {qrel.example_kind} needs a MultimodalRetriever")
    return retriever.retrieve(qrel.query), "rrf", None


def _searched(retriever: Any, qrel: Qrel, top_k: int) -> tuple[List[SearchHit], str, Optional[float]]:
    try:
        results, kind, dropped = _retrieve(retriever, qrel, top_k)
    except ValueError as exc:
        raise ValueError(f"qrels line {qrel.line}: {exc}") from exc
    return search_hits(results[:top_k], kind), kind, dropped  # type: ignore[arg-type]


def _first_ranks(retriever: Any, qrel: Qrel, top_k: int) -> List[int]:
    return first_ranks(_searched(retriever, qrel, top_k)[0], qrel.relevant)


def _is_relevant(hit: SearchHit, qrel: Qrel) -> bool:
    return any(item.matches(hit) for item in qrel.relevant)


def evaluate(retriever: Any, qrels: Union[str, Path, Sequence[Qrel]], k: int = 10, cut: float = 0.5) -> EvalResult:
    """recall@``k``, nDCG@10 and MRR@10 of ``retriever`` over ``qrels`` (a JSONL path or ``load_qrels``'s list),
    and with relevance scores their calibration and abstention (at relevance ``cut``; see ``EvalResult``).

    ``retriever`` is a ``search.SearchSetup`` (what ``mmst eval`` runs: each figure comes from the search
    ``mmst search`` runs with that many results, ``--top-k k`` for recall@k and 10 for nDCG and MRR), a
    ``MultimodalRetriever`` from ``build_pipeline``, or any LlamaIndex retriever for text queries; a
    retriever should return at least ``max(k, 10)`` hits (its ``top_k``, or its reranker's ``top_n``)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    rows = load_qrels(qrels) if isinstance(qrels, (str, Path)) else list(qrels)
    if not rows:
        raise ValueError("no qrels to evaluate")
    per_query = []
    labelled: dict[str, list[tuple[float, bool]]] = {}
    for qrel in rows:
        if not _can_run(retriever, qrel):
            per_query.append(QueryMetrics(qrel.line, 0.0, 0.0, 0.0, (), 0.0, skipped=True,
                                          answerable=bool(qrel.relevant)))
            continue
        start = time.perf_counter()
        hits, kind, dropped = _searched(retriever, qrel, max(k, NDCG_AT))
        ms = (time.perf_counter() - start) * 1000
        ranks = first_ranks(hits, qrel.relevant)
        recall = ndcg = mrr = 0.0
        if qrel.relevant:
            recall, ndcg, mrr = metrics_of_ranks(ranks, len(qrel.relevant), k)
            if isinstance(retriever, SearchSetup) and k < NDCG_AT:  # recall@k: what a search for k results finds
                recall = metrics_of_ranks(_first_ranks(retriever, qrel, k), len(qrel.relevant), k)[0]
            elif isinstance(retriever, SearchSetup) and k > NDCG_AT:  # nDCG and MRR: what a search for 10 finds
                ndcg, mrr = metrics_of_ranks(_first_ranks(retriever, qrel, NDCG_AT), len(qrel.relevant), k)[1:]
        confidence = None
        if kind == "relevance":
            for hit in hits:
                labelled.setdefault(hit.modality, []).append((float(hit.score or 0.0), _is_relevant(hit, qrel)))
            confidence = float(hits[0].score or 0.0) if hits else (dropped if dropped is not None else 0.0)
        per_query.append(QueryMetrics(qrel.line, recall, ndcg, mrr, tuple(ranks), ms, answerable=bool(qrel.relevant),
                                      confidence=confidence, top_relevant=bool(hits) and _is_relevant(hits[0], qrel)))
    answerable = [m for m in per_query if m.answerable]
    count = max(len(answerable), 1)
    timed = [m.ms for m in per_query if not m.skipped]
    return EvalResult(
        k=k, recall=sum(m.recall for m in answerable) / count, ndcg=sum(m.ndcg for m in answerable) / count,
        mrr=sum(m.mrr for m in answerable) / count, queries=len(per_query), skipped=sum(m.skipped for m in per_query),
        p50_ms=statistics.median(timed) if timed else 0.0, per_query=per_query,
        ece={modality: expected_calibration_error([r for r, _ in pairs], [y for _, y in pairs])
             for modality, pairs in sorted(labelled.items())},
        abstention=_abstention(per_query, cut),
    )


def _abstention(per_query: Sequence[QueryMetrics], cut: float) -> dict[str, float]:
    """The abstention figures of ``EvalResult`` (empty without relevance scores)."""
    scored = [m for m in per_query if m.confidence is not None and not m.skipped]
    if not scored:
        return {}
    out: dict[str, float] = {"cut": cut}
    answerable = [m for m in scored if m.answerable]
    if len(answerable) >= 2:
        out["nauc"] = abstention_auc([m.confidence or 0.0 for m in answerable], [m.ndcg for m in answerable])
    coverage, precision = coverage_precision([m.confidence or 0.0 for m in scored],
                                             [m.answerable and m.top_relevant for m in scored], cut)
    out.update(coverage=coverage, precision=precision)
    unanswerable = [m for m in scored if not m.answerable]
    if unanswerable:
        out["silent"] = sum((m.confidence or 0.0) < cut for m in unanswerable) / len(unanswerable)
    return out
