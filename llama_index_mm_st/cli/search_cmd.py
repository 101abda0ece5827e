"""``mmst search``: the flags become a ``search.SearchRequest``; the library's search step does the rest.

What stays here is the command line's own business: a path or URL given as an example (it must exist, a
URL needs ``--allow-urls``), loading the models, printing, and wording the search step's refusals
(``InvalidQueryError``: its ``param`` becomes the flag, its ``code`` picks the hint).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

from ..errors import InvalidQueryError, UnsupportedModalityError
from .models import (CLIError, backend_option, load_embedding, load_reranker, model_name, resolve_model,
                     resolve_models)
from .stores import indexed_manifest, open_store

if TYPE_CHECKING:
    from ..search import SearchRequest

FLAGS = {"text": "the query text", "image": "--image", "audio": "--audio", "video": "--video", "mode": "--mode",
         "top_k": "--top-k", "mmr": "--mmr", "max_per_document": "--max-per-document", "fusion": "--fusion",
         "rrf_k": "--rrf-k", "rrf_weights": "--weight", "filters": "--filter", "modality": "--modality",
         "min_relevance": "--min-relevance"}
"""Each ``SearchRequest`` field as the command line names it."""


def query_error(exc: InvalidQueryError, example_flag: str = "image") -> CLIError:
    """The search step's refusal in the command line's terms: the flag, the reason, and what to type instead."""
    hints = {
        "empty_text": 'give words, e.g. mmst search "a red car", or --image PATH',
        "no_query": 'give query text or --image/--audio/--video PATH, e.g. mmst search "a red car"',
        "sparse_example": f"leave out --{example_flag}, or use --mode hybrid or dense to search by {example_flag}",
        "no_words": "use other words, or --mode hybrid or dense",
    }
    hint = hints.get(exc.code)
    return CLIError(f"{FLAGS.get(exc.param, exc.param)}: {exc.reason}" + (f"; {hint}" if hint else ""))


def example_flag(args: argparse.Namespace) -> tuple[str, Optional[str]]:
    """Which search-by-example flag was given (--image, --audio or --video; at most one) and its value."""
    for flag in ("image", "audio", "video"):
        value = getattr(args, flag, None)
        if value is not None:
            return flag, value
    return "image", None


def check_example_path(flag: str, example: Optional[str], allow_urls: bool) -> None:
    """An example on the command line is a path that exists, or an http(s) URL with ``--allow-urls``."""
    if example is None:
        return
    from ..errors import ItemError
    from ..fetch import url_of

    try:
        remote = url_of(example, f"--{flag}", instead=f"give the {flag} as a plain path") is not None
    except ItemError as refused:
        raise CLIError(f"--{flag} {example}: {refused.reason}") from None
    if remote:
        if not allow_urls:
            raise CLIError(f"--{flag} {example} is a URL: add --allow-urls to fetch it")
    elif not os.path.exists(example):
        raise CLIError(f"query {flag} not found: {example}")


def search_request(args: argparse.Namespace, quality: dict[str, Any]) -> "SearchRequest":
    """The flags as the library's request, checked (a refusal is a one-line ``CLIError``)."""
    from ..search import SearchRequest

    flag, example = example_flag(args)
    evidence = bool(getattr(args, "evidence", False) or getattr(args, "crops", None))
    request = SearchRequest(text=args.text, **({flag: example} if example is not None else {}), top_k=args.top_k,
                            mode=args.mode, modality=args.modality, filters=getattr(args, "filters", None),
                            evidence=evidence, **quality)
    try:
        request.check()
    except InvalidQueryError as exc:
        raise query_error(exc, flag) from None
    return request


def cmd_search(args: argparse.Namespace) -> int:
    from .retrieval_flags import retrieval_options

    quality = retrieval_options(args)
    request = search_request(args, quality)  # before any heavy import: a refused query fails at once
    flag, example = example_flag(args)
    check_example_path(flag, example, args.allow_urls)

    from ..ingest import check_model
    from ..search import search
    from .progress import quiet_libraries
    from .search_view import to_json, to_table

    with open_store(args, must_exist=True) as store:
        manifest = indexed_manifest(store)
        check_model(manifest, model_name(args.model) if args.model else None)
        reranker = None
        rerankers = resolve_models(args.rerank or (), "--rerank")  # settled before any model loads (fast offline)
        with quiet_libraries():  # the answer goes to stdout; no loading bars on stderr for a search
            embedding = load_embedding(resolve_model(manifest.model), allow_urls=args.allow_urls,
                                       allow_private_urls=args.allow_private_urls, **backend_option(args))
            if rerankers:
                from ..calibration import rerank_calibration

                reranker = load_reranker(rerankers, top_n=args.top_k, on_unsupported=args.rerank_unsupported,
                                         calibration=rerank_calibration(store), **backend_option(args))
        try:
            result = search(store, embedding, reranker, request)
        except InvalidQueryError as exc:
            raise query_error(exc, flag) from None
        except UnsupportedModalityError as exc:  # only raised with --rerank-unsupported raise
            raise CLIError("--rerank-unsupported raise: some results are of a kind no --rerank model reads (an image "
                           "with only a text cross-encoder, say); add a --rerank model that reads them, or use "
                           "--rerank-unsupported keep (--debug names the results)") from exc
    schema = store.schema
    late = schema is not None and schema.late_interaction
    sparse = schema.sparse_vectors if schema is not None else ("bm25",)
    rows = result.to_dicts()
    if getattr(args, "crops", None):
        from ..evidence.clips import write_clips

        for row, item, hit in zip(rows, result.nodes, result.hits):
            row["crops"] = [None if path is None else str(path)
                            for path in write_clips(item.node, hit.evidence or [], args.crops, f"{hit.rank:02d}",
                                                    embedding.fetch_options)]
    if result.abstained:  # one line for people; JSON readers get an empty list, and the line on stderr
        print(to_json(rows) if args.json else result.abstention)
        if args.json:
            print(result.abstention, file=sys.stderr)
        return 0
    print(to_json(rows) if args.json else to_table(rows, result.score_kind, args.mode, late, sparse))
    return 0
