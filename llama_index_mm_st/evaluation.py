"""Retrieval quality on the user's own data: recall@k, nDCG@10 and MRR@10 over a qrels file.

A qrels file is JSON Lines, one query per line::

    {"query": "a red circle", "relevant": ["data/red_circle.png"]}
    {"image": "queries/sky.jpg", "relevant": ["data/night_sky.webp", "3f2c...node id"]}
    {"query": "revenue table", "relevant": ["data/report.pdf#page=2"]}

``query`` is the text, ``image`` (or ``audio``/``video``) an example to search by (both: the example
drives the dense search, the text the words); ``relevant`` lists what should be found: node ids, or
source files (a hit counts when it came from that file, a PDF's ``#page=N`` when it is that page).
Relative paths are read from the qrels file's folder. Each relevant item counts once, at the rank of
its first hit (ten chunks of one relevant file are one find, not ten).

With binary relevance and rank r counted from 1 among the first k hits:
- recall@k: the share of the relevant items found in the top k;
- nDCG@10: sum of 1/log2(r + 1) over the first finds, divided by the same sum for a perfect ranking
  (``min(len(relevant), 10)`` finds at ranks 1, 2, ...);
- MRR@10: 1/r of the first find in the top 10, else 0.
These equal LlamaIndex's ``RetrieverEvaluator`` metrics (``recall``, ``ndcg``, ``mrr``) on the same
lists where those are defined alike: node-id qrels with at most 10 relevant ids (LlamaIndex's nDCG
divides by all relevant items, not the first 10).
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
        if not isinstance(relevant, list) or not relevant:
            raise ValueError(f"{where}: 'relevant' must be a non-empty list of node ids or paths")
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
    configuration can't run it (a sparse search of a query with no words scores 0)."""

    line: int
    recall: float
    ndcg: float
    mrr: float
    ranks: tuple[int, ...]
    ms: float
    skipped: bool = False


def metrics_of_ranks(ranks: Sequence[int], relevant: int, k: int) -> tuple[float, float, float]:
    """(recall@k, nDCG@10, MRR@10) of first-find ranks among ``relevant`` items."""
    recall = sum(1 for r in ranks if r <= k) / relevant
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(relevant, NDCG_AT) + 1))
    ndcg = sum(1.0 / math.log2(r + 1) for r in ranks if r <= NDCG_AT) / ideal
    mrr = next((1.0 / r for r in sorted(ranks) if r <= MRR_AT), 0.0)
    return recall, ndcg, mrr


@dataclass(frozen=True)
class EvalResult:
    """Means over every query (a skipped query counts 0), at ``k`` (nDCG and MRR at 10), with the median
    time of a query and each query's own figures."""

    k: int
    recall: float
    ndcg: float
    mrr: float
    queries: int
    skipped: int
    p50_ms: float
    per_query: List[QueryMetrics] = field(default_factory=list)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        data = {f"recall@{self.k}": self.recall, f"ndcg@{NDCG_AT}": self.ndcg, f"mrr@{MRR_AT}": self.mrr,
                "queries": self.queries, "skipped": self.skipped, "p50_ms": self.p50_ms}
        if per_query:
            data["per_query"] = [asdict(m) for m in self.per_query]
        return data


def _can_run(retriever: Any, qrel: Qrel) -> bool:
    """A sparse (words only) search needs query text."""
    mode = retriever.request.mode if isinstance(retriever, SearchSetup) else getattr(retriever, "mode", None)
    return not (mode == "sparse" and qrel.query is None)


def _retrieve(retriever: Any, qrel: Qrel, top_k: int) -> list[Any]:
    """The hits for one qrel: a ``SearchSetup`` runs the search step with ``top_k`` (what ``mmst search
    --top-k`` returns); a retriever returns what it returns."""
    example = {qrel.example_kind: qrel.example} if qrel.example else {}
    if isinstance(retriever, SearchSetup):
        return retriever.run(qrel.query, top_k=top_k, **example).nodes
    if hasattr(retriever, "search"):  # MultimodalRetriever: text, an example, or both
        return retriever.search(qrel.query, **example)
    if qrel.example is not None:
        raise ValueError(f"qrels line {qrel.line}: a query by {qrel.example_kind} needs a MultimodalRetriever")
    return retriever.retrieve(qrel.query)


def _first_ranks(retriever: Any, qrel: Qrel, top_k: int) -> List[int]:
    try:
        results = _retrieve(retriever, qrel, top_k)
    except ValueError as exc:
        raise ValueError(f"qrels line {qrel.line}: {exc}") from exc
    return first_ranks(search_hits(results[:top_k], "rrf"), qrel.relevant)


def evaluate(retriever: Any, qrels: Union[str, Path, Sequence[Qrel]], k: int = 10) -> EvalResult:
    """recall@``k``, nDCG@10 and MRR@10 of ``retriever`` over ``qrels`` (a JSONL path or ``load_qrels``'s list).

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
    for qrel in rows:
        if not _can_run(retriever, qrel):
            per_query.append(QueryMetrics(qrel.line, 0.0, 0.0, 0.0, (), 0.0, skipped=True))
            continue
        start = time.perf_counter()
        ranks = _first_ranks(retriever, qrel, max(k, NDCG_AT))
        ms = (time.perf_counter() - start) * 1000
        recall, ndcg, mrr = metrics_of_ranks(ranks, len(qrel.relevant), k)
        if isinstance(retriever, SearchSetup) and k < NDCG_AT:  # recall@k: what a search for k results finds
            recall = metrics_of_ranks(_first_ranks(retriever, qrel, k), len(qrel.relevant), k)[0]
        elif isinstance(retriever, SearchSetup) and k > NDCG_AT:  # nDCG and MRR: what a search for 10 finds
            ndcg, mrr = metrics_of_ranks(_first_ranks(retriever, qrel, NDCG_AT), len(qrel.relevant), k)[1:]
        per_query.append(QueryMetrics(qrel.line, recall, ndcg, mrr, tuple(ranks), ms))
    count = len(per_query)
    timed = [m.ms for m in per_query if not m.skipped]
    return EvalResult(
        k=k, recall=sum(m.recall for m in per_query) / count, ndcg=sum(m.ndcg for m in per_query) / count,
        mrr=sum(m.mrr for m in per_query) / count, queries=count, skipped=sum(m.skipped for m in per_query),
        p50_ms=statistics.median(timed) if timed else 0.0, per_query=per_query,
    )
