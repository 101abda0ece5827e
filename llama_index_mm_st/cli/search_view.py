"""``mmst search`` output: a ranked table for people, or JSON for programs.

Scores of different kinds don't compare (an RRF score of 0.03 is a top hit; a cosine of 0.03 is
noise), so every output says which kind it shows: the table's score column is titled by it and a
note under the table explains it; each JSON row carries ``score_kind``.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, Callable, Literal, Sequence

from llama_index.core.schema import BaseNode, NodeWithScore

from ..media_refs import FRAME_TIME_KEY

ScoreKind = Literal["rrf", "bm25", "maxsim", "reranker", "reranker_rrf"]

COLUMN_TITLES: dict[str, str] = {"rrf": "RRF", "bm25": "BM25", "maxsim": "MaxSim", "reranker": "rerank",
                                 "reranker_rrf": "rerankRRF"}


def score_kind(mode: str, rerankers: int, late: bool = False) -> ScoreKind:
    """What the final scores are: the rerankers' when there are any, else the store's for this mode
    (a dense search of a late-interaction index reports each page's exact MaxSim)."""
    if rerankers:
        return "reranker" if rerankers == 1 else "reranker_rrf"
    if mode == "sparse":
        return "bm25"
    return "maxsim" if late and mode == "dense" else "rrf"


def explain(kind: str, mode: str, late: bool = False) -> str:
    """One line saying what the score column holds."""
    if kind == "maxsim":
        return ("score: exact MaxSim (late interaction: each query token's best match among the page's token "
                "vectors, summed; higher is better)")
    if kind == "rrf":
        dense = "MaxSim ranking (late interaction)" if late else "dense text and image rankings"
        lists = dense + (" and the BM25 word ranking" if mode == "hybrid" else "")
        return f"score: RRF fusion of the {lists} (rank-based, higher is better; not a similarity)"
    if kind == "bm25":
        return "score: BM25 word-match score (higher is better)"
    if kind == "reranker":
        return "score: the reranker model's own relevance score (higher is better)"
    return "score: RRF fusion of the rerankers' rankings (their own scales don't compare; higher is better)"


def result_rows(results: Sequence[NodeWithScore], kind: str,
                modality_of: Callable[[BaseNode], str]) -> list[dict[str, Any]]:
    """One dict per result: rank, score, score_kind, modality (``modality_of``: the store's rule),
    source (file path), page, time_s (a video frame's time), text, node_id."""
    rows = []
    for rank, item in enumerate(results, start=1):
        node = item.node
        metadata = node.metadata or {}
        source = (metadata.get("file_path") or getattr(node, "image_path", None) or getattr(node, "image_url", None)
                  or metadata.get("audio_path") or metadata.get("video_path"))
        time = metadata.get(FRAME_TIME_KEY)
        rows.append({
            "rank": rank,
            "score": None if item.score is None else float(item.score),
            "score_kind": kind,
            "modality": modality_of(node),
            "source": source,
            "page": metadata.get("page"),
            "time_s": float(time) if isinstance(time, (int, float)) and not isinstance(time, bool) else None,
            "text": node.get_content(),
            "node_id": node.node_id,
        })
    return rows


def _clock(seconds: float) -> str:
    """A timestamp as people read it: 75.5 -> "1:15.5"."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


def to_table(rows: Sequence[dict[str, Any]], kind: str, mode: str, late: bool = False) -> str:
    """Rank, score (titled by its kind), modality, source (and page), snippet; fitted to the terminal width."""
    if not rows:
        return "no results"
    width = shutil.get_terminal_size((120, 20)).columns
    lines = [f"{'rank':>4}  {COLUMN_TITLES[kind]:>9}  {'modality':<10}  source / snippet"]
    for row in rows:
        source = str(row["source"] or "")
        if row["page"] is not None:
            source += f" (page {row['page']})"
        if row.get("time_s") is not None:
            source += f" (at {_clock(row['time_s'])})"
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        lines.append(f"{row['rank']:>4}  {score:>9}  {row['modality']:<10}  {source}")
        snippet = " ".join(str(row["text"] or "").split())
        if snippet:
            room = max(20, width - 31)
            lines.append(f"{'':>29}{snippet[:room] + ('...' if len(snippet) > room else '')}")
    lines.append(explain(kind, mode, late))
    return "\n".join(lines)
