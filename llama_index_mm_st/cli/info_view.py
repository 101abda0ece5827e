"""``mmst info``'s lines about search quality: the sparse vectors, the search width, and (``--recall``)
how much of the true top 10 the approximate search finds, per dense vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import MultimodalQdrantStore


def quality_lines(store: "MultimodalQdrantStore", recall: bool) -> list[str]:
    schema = store.schema
    if schema is None:
        return []
    sparse = " + ".join(
        ("BM25" if name == schema.sparse else f"learned ({schema.sparse_model})") for name in schema.sparse_vectors)
    lines = [f"word vectors: {sparse or 'none'}"]
    if schema.exact_search:
        lines.append(f"search: exact (no graph width up to {schema.hnsw_ef} reached recall {schema.target_recall:.2f}, "
                     "and exact search was no slower)")
    elif schema.hnsw_ef is not None:
        lines.append(f"search width: hnsw_ef={schema.hnsw_ef} (chosen for recall {schema.target_recall:.2f})")
    if recall and store.count():
        report = store.recall_report()
        if report.exact_search:
            lines.append("recall@10: 1.000 (this backend always searches exactly)")
        else:
            per = ", ".join(f"{name} {value:.3f} ({report.queries[name]} queries)" for name, value in report.by_vector.items())
            lines.append(f"recall@{report.top_k} at hnsw_ef={report.hnsw_ef}, estimated against exact search on stored "
                         f"points: {report.recall:.3f} ({per})")
            if report.recall < 0.95:
                lines.append("  below 0.95: open the store with target_recall=0.95 (or a larger hnsw_ef) to search wider")
    return lines
