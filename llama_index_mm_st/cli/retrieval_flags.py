"""The search-quality flags ``mmst search`` and ``mmst eval`` share: diversity, one hit per document,
fusion. Parsed here into the keyword arguments of ``build_pipeline``, checked before any model loads."""

from __future__ import annotations

import argparse
from typing import Any

from ..defaults import DEFAULT_DOCUMENT_KEY
from .models import CLIError

BRANCHES = ("text", "image", "audio", "video", "bm25", "learned")


def add_retrieval_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mmr", nargs="?", type=float, const=0.5, default=None, metavar="LAMBDA",
                        help="diversify the results (MMR): LAMBDA weighs relevance against novelty, from 1 (relevance "
                             "only) to 0 (novelty only); without a value 0.5. Dense or hybrid mode")
    parser.add_argument("--max-per-document", type=int, default=None, metavar="N",
                        help="at most N results from one source file (a PDF's pages, a video's frames), the rest "
                             "filled from further down")
    parser.add_argument("--fusion", choices=["rrf", "dbsf"], default=None,
                        help="how the ranked lists merge: rrf (by rank, default) or dbsf (by normalised score)")
    parser.add_argument("--rrf-k", type=int, default=None, metavar="K", help="RRF's k (default 60)")
    parser.add_argument("--weight", default=None, metavar="LIST",
                        help="RRF weight per list, e.g. text=1,image=2,bm25=0.5 (lists: " + ", ".join(BRANCHES) + ")")


def parse_weights(text: str) -> dict[str, float]:
    """``text=1,image=2`` -> {"text": 1.0, "image": 2.0}, with a one-line error naming the bad part. Which
    names and values a search takes is the search step's rule (``pipeline.check_options``)."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name:
            raise CLIError(f"--weight {text!r}: write NAME=NUMBER pairs separated by commas, e.g. text=1,image=2")
        try:
            weights[name] = float(value)
        except ValueError:
            raise CLIError(f"--weight: {name}={value!r} is not a number") from None
    return weights


def retrieval_options(args: argparse.Namespace) -> dict[str, Any]:
    """``SearchRequest`` fields from the flags (only those given); the search step checks them."""
    options: dict[str, Any] = {}
    if args.mmr is not None:
        options["mmr"] = args.mmr
    if args.max_per_document is not None:
        options.update(max_per_document=args.max_per_document, document_key=DEFAULT_DOCUMENT_KEY)
    if args.fusion is not None:
        options["fusion"] = args.fusion
    if args.rrf_k is not None:
        options["rrf_k"] = args.rrf_k
    if args.weight is not None:
        options["rrf_weights"] = parse_weights(args.weight)
    return options
