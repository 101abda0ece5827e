"""``mmst search`` output: a ranked table for people, or JSON for programs (``hits.SearchHit`` rows).

Every output says which kind of score it shows: the table's score column is titled by it and a note
under the table explains it (``hits.explain``); each JSON row carries ``score_kind``.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, Sequence

from ..evidence.kinds import describe, evidence_from_dict
from ..hits import explain

COLUMN_TITLES: dict[str, str] = {"rrf": "RRF", "dbsf": "DBSF", "bm25": "BM25", "learned_sparse": "sparse",
                                 "maxsim": "MaxSim", "mmr": "MMR cos", "reranker": "rerank", "relevance": "relevance"}


def _clock(seconds: float) -> str:
    """A timestamp as people read it: 75.5 -> "1:15.5"."""
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def evidence_lines(row: dict[str, Any], room: int) -> list[str]:
    """The evidence of one row, one line each (the file written for it, with --crops)."""
    pieces = row.get("evidence") or []
    if not pieces:
        return ["evidence: none found"]
    files = row.get("crops") or [None] * len(pieces)
    lines = []
    for piece, path in zip(pieces, files):
        line = f"evidence: {describe(evidence_from_dict(piece), str(row.get('text') or ''))}" + (f" -> {path}" if path else "")
        lines.append(line if len(line) <= max(20, room) or path else line[: max(20, room) - 3] + "...")
    return lines


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


def to_table(rows: Sequence[dict[str, Any]], kind: str, mode: str, late: bool = False,
             sparse: Sequence[str] = ("bm25",)) -> str:
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
        if row.get("evidence") is not None:
            lines.extend(f"{'':>29}{line}" for line in evidence_lines(row, width - 29))
    lines.append(explain(kind, mode, late, sparse))
    return "\n".join(lines)
