"""``mmst calibrate QRELS``: fit the index's relevance (and a reranker's) to labelled queries.

Each query's hits are labelled by the qrels file (the files or nodes that answer it, as ``mmst eval``
reads them); per dense vector the index learns how its evidence maps to the share of hits that are
relevant, and keeps the maps with the index, so every later ``mmst search`` (and ``/v1/search``)
reports calibrated relevance. ``--rerank MODEL`` calibrates that reranker too, per scorer and
document modality; ``mmst search --rerank`` uses the maps. Prints the calibration error (ECE) per
vector before and after.
"""

from __future__ import annotations

import argparse
import json

from .models import CLIError, add_backend_flags, backend_option


def add_calibrate_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "calibrate", help="fit the relevance scores to a qrels file (kept with the index)",
        description="Label the hits of every query of QRELS (JSON Lines, as mmst eval reads it) and fit how "
                    "relevance is computed to them, per modality; the index keeps the fit.",
    )
    parser.add_argument("qrels", help="JSONL file of queries and their relevant files or node ids")
    parser.add_argument("--rerank", action="append", default=None, metavar="MODEL",
                        help="also calibrate this reranker (repeat for several)")
    parser.add_argument("--depth", type=int, default=50, help="hits labelled per query (default 50)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--allow-urls", action="store_true", help="let query images be http(s) URLs")
    add_backend_flags(parser)
    return parser


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibration import calibrate
    from .eval_cmd import read_qrels
    from .models import load_embedding, load_reranker, resolve_model
    from .progress import quiet_libraries
    from .stores import indexed_manifest, open_store

    if args.depth < 1:
        raise CLIError("--depth must be at least 1")
    qrels = read_qrels(args.qrels)
    with open_store(args, must_exist=True) as store:
        manifest = indexed_manifest(store)
        with quiet_libraries():
            embedding = load_embedding(resolve_model(manifest.model), allow_urls=args.allow_urls,
                                       **backend_option(args))
            reranker = (load_reranker(args.rerank, top_n=args.depth, on_unsupported="keep", **backend_option(args))
                        if args.rerank else None)
        result = calibrate(store, embedding, qrels, reranker=reranker, depth=args.depth, model=manifest.model)
    report = result.store
    rows = {name: {"hits": fit.samples, "relevant": fit.relevant, "ece_before": fit.ece_before,
                   "ece_after": fit.ece_after} for name, fit in report.vectors.items()}
    if args.json:
        print(json.dumps({"queries": report.queries, "vectors": rows,
                          "rerank": None if result.rerank is None else result.rerank.to_dict()}, indent=2))
        return 0
    lines = [f"{report.queries} queries"]
    for name, row in rows.items():
        after = "kept the prior (too few labelled hits)" if row["ece_after"] is None else f"ECE {row['ece_after']:.3f}"
        lines.append(f"{name:<8} {row['hits']:>6} hits ({row['relevant']} relevant): ECE {row['ece_before']:.3f} -> {after}")
    if result.rerank is not None:
        fitted = [f"{scorer} ({', '.join(sorted(by))})" for scorer, by in result.rerank.maps.items()]
        lines.append("rerank: " + ("; ".join(fitted) if fitted else "kept each scorer's own scale (too few labels)"))
    print("\n".join(lines))
    return 0
