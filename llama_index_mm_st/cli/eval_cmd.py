"""``mmst eval QRELS``: how well the index finds what a qrels file says it should, per setting.

Every ``--mode`` is run without a reranker and with each ``--rerank`` model, side by side in one table
(or ``--json``): recall@k, nDCG@10, MRR@10, the median time of a query, and how many queries a mode
could not run (a sparse search of a query by image: no words). Rows with relevance scores add their
calibration error (the worst modality's; every modality's in ``--json``) and abstention: nAUC, and at
``--min-relevance`` (default 0.5) the share of queries answered and, for queries with ``"relevant": []``,
the share left silent. The metrics are
``llama_index_mm_st.evaluation``'s; the search flags (``--mmr``, ``--max-per-document``, ``--fusion``,
``--rrf-k``, ``--weight``) apply to every row (``--mmr`` to the dense and hybrid ones).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from .models import CLIError, add_backend_flags, backend_option
from .retrieval_flags import add_retrieval_flags, retrieval_options

MODES = ("dense", "sparse", "hybrid")


def add_eval_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "eval", help="measure recall@k, nDCG@10 and MRR@10 on a qrels file, per mode and reranker",
        description="Run every query of QRELS (JSON Lines: {\"query\": \"...\", \"relevant\": [\"path or node id\", "
                    "...]}, or \"image\": \"path\" to search by image; relative paths are read from the file's "
                    "folder) in each --mode, without and with each --rerank, and print the metrics side by side.",
    )
    parser.add_argument("qrels", help="JSONL file of queries and their relevant files or node ids")
    parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES), help="modes to compare (default: all three)")
    parser.add_argument("--rerank", action="append", default=None, metavar="MODEL",
                        help="also run each mode with this reranker (repeat for several: one row each)")
    parser.add_argument("--k", type=int, default=10, help="recall@k (default 10); nDCG and MRR are at 10")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--allow-urls", action="store_true", help="let query images be http(s) URLs")
    add_retrieval_flags(parser)
    add_backend_flags(parser)
    return parser


def _table(rows: list[dict[str, Any]], k: int, queries: int) -> str:
    head = f"{'mode':<8}{'rerank':<28}{f'recall@{k}':>11}{'nDCG@10':>9}{'MRR@10':>8}{'p50 ms':>9}{'skipped':>9}"
    relevance = any(row.get("abstention") for row in rows)
    if relevance:
        head += f"{'ECE max':>9}{'nAUC':>7}{'answered':>10}{'silent':>8}"
    lines = [f"{queries} queries", head]
    for row in rows:
        rerank = row["rerank"] or "-"
        rerank = rerank if len(rerank) <= 26 else "..." + rerank[-23:]
        line = (f"{row['mode']:<8}{rerank:<28}{row[f'recall@{k}']:>11.3f}{row['ndcg@10']:>9.3f}"
                f"{row['mrr@10']:>8.3f}{row['p50_ms']:>9.1f}{row['skipped']:>9}")
        if relevance:
            ece = row.get("ece") or {}
            abstention = row.get("abstention") or {}
            line += f"{max(ece.values()) if ece else float('nan'):>9.3f}" + "".join(
                f"{abstention[key]:>{width}.3f}" if key in abstention else f"{'-':>{width}}"
                for key, width in (("nauc", 7), ("coverage", 10), ("silent", 8)))
        lines.append(line)
    return "\n".join(lines)


def read_qrels(path: str) -> Any:
    """The qrels file of ``mmst eval`` and ``mmst calibrate``; a missing one is a one-line error."""
    from ..evaluation import load_qrels

    try:
        return load_qrels(path)
    except FileNotFoundError:
        raise CLIError(f"no qrels file at {path}") from None


def cmd_eval(args: argparse.Namespace) -> int:
    from ..errors import InvalidQueryError
    from ..evaluation import evaluate
    from ..search import SearchRequest, SearchSetup
    from .models import load_embedding, load_reranker, resolve_model
    from .progress import quiet_libraries
    from .search_cmd import query_error
    from .stores import indexed_manifest, open_store

    if args.k < 1:
        raise CLIError("--k must be at least 1")
    quality = retrieval_options(args)
    requests = {}
    for mode in dict.fromkeys(args.mode):  # every row's options, checked before anything loads
        options = dict(quality)
        if mode == "sparse":
            options.pop("mmr", None)  # MMR compares dense vectors; a words-only search has none
            options.pop("min_relevance", None)  # and BM25 scores are not relevances
        requests[mode] = SearchRequest(text="?", mode=mode, top_k=max(args.k, 10), **options)
        try:
            requests[mode].check()
        except InvalidQueryError as exc:
            raise query_error(exc) from None
    qrels = read_qrels(args.qrels)
    rows: list[dict[str, Any]] = []
    with open_store(args, must_exist=True) as store:
        manifest = indexed_manifest(store)
        with quiet_libraries():
            embedding = load_embedding(resolve_model(manifest.model), allow_urls=args.allow_urls, **backend_option(args))
            rerankers: list[tuple[Optional[str], Any]] = [(None, None)] + [
                (model, load_reranker([model], top_n=max(args.k, 10), on_unsupported="keep", **backend_option(args)))
                for model in args.rerank or []]
        for mode, request in requests.items():
            for name, reranker in rerankers:
                cut = args.min_relevance if args.min_relevance is not None else 0.5
                result = evaluate(SearchSetup(store, embedding, reranker, request), qrels, k=args.k, cut=cut)
                rows.append({"mode": mode, "rerank": name, **result.to_dict()})
    print(json.dumps({"k": args.k, "queries": len(qrels), "rows": rows}, indent=2) if args.json
          else _table(rows, args.k, len(qrels)))
    return 0
