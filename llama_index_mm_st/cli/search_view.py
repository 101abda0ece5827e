"""``mmst search`` output: a ranked table for people, or JSON for programs."""

from __future__ import annotations

import json
import shutil
from typing import Any, Callable, Sequence

from llama_index.core.schema import BaseNode, NodeWithScore


def result_rows(results: Sequence[NodeWithScore], modality_of: Callable[[BaseNode], str]) -> list[dict[str, Any]]:
    """One dict per result: rank, score, modality (``modality_of``: the store's rule), source (file
    path), page, text, node_id."""
    rows = []
    for rank, item in enumerate(results, start=1):
        node = item.node
        metadata = node.metadata or {}
        source = metadata.get("file_path") or getattr(node, "image_path", None) or getattr(node, "image_url", None)
        rows.append({
            "rank": rank,
            "score": None if item.score is None else float(item.score),
            "modality": modality_of(node),
            "source": source,
            "page": metadata.get("page"),
            "text": node.get_content(),
            "node_id": node.node_id,
        })
    return rows


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


def to_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rank, score, modality, source (and page), snippet; fitted to the terminal width."""
    if not rows:
        return "no results"
    width = shutil.get_terminal_size((120, 20)).columns
    lines = [f"{'rank':>4}  {'score':>8}  {'modality':<10}  source / snippet"]
    for row in rows:
        source = str(row["source"] or "")
        if row["page"] is not None:
            source += f" (page {row['page']})"
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        lines.append(f"{row['rank']:>4}  {score:>8}  {row['modality']:<10}  {source}")
        snippet = " ".join(str(row["text"] or "").split())
        if snippet:
            room = max(20, width - 30)
            lines.append(f"{'':>28}{snippet[:room] + ('...' if len(snippet) > room else '')}")
    return "\n".join(lines)
