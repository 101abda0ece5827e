"""``mmst index``: a thin runner on the library's ingestion job (``ingest.Indexer``, or the Ray
runner with ``--ray``).

The store is opened first, once: an embedded store's lock is taken before any file is walked or any
model loaded, so a second writer is refused at once. Then the recorded model is checked, the model
loaded, and the job run; the summary is printed by the same lines for both runners.

The job follows the files: documents of files gone from the folders named are removed (``--keep-missing``
keeps them: append-only). It runs in a worker thread, so Ctrl-C is answered at once: the job is asked
to stop at its next step, and if it is inside a step (a model batch) after ``STOP_GRACE_S`` the process
exits as a kill would; every write is in the store's write-ahead log, and the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Callable, Optional, TypeVar

from ..defaults import DEFAULT_MODEL
from ..readers.walk import url_refusal
from .models import CLIError, add_backend_flags, backend_option, load_embedding, model_name, resolve_model
from .progress import BarProgress, Stage, quiet_libraries
from .stores import DEFAULT_STORE, open_store, store_exists

STRICT_EXIT = 3
INTERRUPTED_EXIT = 130
STOP_GRACE_S = 0.5
"""After Ctrl-C, how long the job may take to reach its next step before the process exits anyway."""
INTERRUPTED_MESSAGE = "mmst: interrupted; run the same command again to resume"
T = TypeVar("T")


def add_index_arguments(index: argparse.ArgumentParser) -> None:
    index.add_argument("paths", nargs="+", help="files or folders (images, PDFs, .txt, .md, audio, video)")
    index.add_argument("--model", default=None,
                       help=f"hub model id or local model directory (default {DEFAULT_MODEL}); offline, use a "
                            "local directory or HF_HUB_OFFLINE=1 with a filled cache")
    add_backend_flags(index)
    index.add_argument("--keep-missing", action="store_true",
                       help="append-only: keep the documents of files gone from the folders named (by default they "
                            "are removed, and the summary says so)")
    index.add_argument("--strict", action="store_true",
                       help=f"exit with status {STRICT_EXIT} when any file was skipped (unreadable or broken)")
    index.add_argument("--ray", action="store_true", help="run on Ray: local, or the cluster at RAY_ADDRESS ([ray] extra)")
    index.add_argument("--ray-actors", type=int, default=1, help="with --ray: model actors (one model each)")
    index.add_argument("--ray-gpus-per-actor", type=float, default=None, help="with --ray: GPUs per actor (default: 1 if any)")
    index.add_argument("--sparse-model", default=None, metavar="MODEL",
                       help="a new index: also store a learned sparse vector of the words (a sentence-transformers "
                            "SparseEncoder id or folder, e.g. a SPLADE model), searched beside BM25")
    index.add_argument("--no-bm25", action="store_true", help="with --sparse-model: the learned vector replaces BM25")
    index.add_argument("--server", default=None, metavar="URL",
                       help="send the files to a running 'mmst serve' (it holds the index and its model, and writes "
                            "them as this command would); no model is loaded here")
    index.add_argument("--api-key", default=None, help="with --server: the server's key (default: $MMST_API_KEY)")


def _check_args(args: argparse.Namespace) -> None:
    if not args.ray and (args.ray_actors != 1 or args.ray_gpus_per_actor is not None):
        raise CLIError("--ray-actors and --ray-gpus-per-actor need --ray")
    if args.ray_actors < 1:
        raise CLIError("--ray-actors must be at least 1")
    if args.ray_gpus_per_actor is not None and args.ray_gpus_per_actor < 0:
        raise CLIError("--ray-gpus-per-actor must be 0 or more")
    if args.no_bm25 and not args.sparse_model:
        raise CLIError("--no-bm25 replaces BM25 by a learned sparse model: give --sparse-model MODEL too")
    urls = [f"{path}: {refused.reason}" for path in args.paths if (refused := url_refusal(path)) is not None]
    if urls:
        raise CLIError(f"{'; '.join(urls)} (mmst index reads files and folders)")
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        raise CLIError(f"no such file or folder: {', '.join(missing)}")


def sparse_options(args: argparse.Namespace) -> dict[str, object]:
    """The store's learned-sparse options from ``--sparse-model``/``--no-bm25`` (none given: the index's own)."""
    options: dict[str, object] = {}
    if args.sparse_model:
        options["sparse_model"] = model_name(args.sparse_model)
    if args.no_bm25:
        options["bm25"] = False
    return options


class RunningJob:
    """The ingestion job of this command once it runs, so a Ctrl-C can ask it to stop."""

    def __init__(self) -> None:
        self.indexer: Any = None

    def cancel(self) -> None:
        if self.indexer is not None:
            self.indexer.cancel()


def cmd_index(args: argparse.Namespace) -> int:
    if args.server:
        from .index_remote import cmd_index_remote

        return cmd_index_remote(args)
    if args.api_key:
        raise CLIError("--api-key goes with --server (a Qdrant server's key comes from QDRANT_API_KEY)")
    job = RunningJob()

    def run() -> int:
        if args.url:
            return _index(args, job)
        from ..locks import reserve

        # The embedded store's lock first, before the engine is imported, a file walked or a model loaded:
        # a second writer is refused at once; the store opened below takes this lock over.
        with reserve(os.path.join(args.store or DEFAULT_STORE, args.collection)):
            return _index(args, job)

    if args.ray:
        return run()  # Ray installs its own signal handling, on the main thread
    # Everything (imports, the model load, the job, optimize) off the main thread: Ctrl-C is answered at once.
    return run_interruptibly(run, job.cancel)


def _index(args: argparse.Namespace, job: RunningJob) -> int:
    from ..ingest import Indexer, check_model, read_manifest

    _check_args(args)
    ray = None
    if args.ray:
        from ..distributed._ray import require_ray

        ray = require_ray()  # a missing extra is named before the store or a model is touched
    progress = not args.no_progress
    requested = model_name(args.model) if args.model else None
    # A model that can't be had fails in one line before the store is touched (fast offline); the
    # recorded model of an existing store is known only once it is open (and locked).
    early = resolve_model(requested or DEFAULT_MODEL) if requested or not store_exists(args) else None
    with open_store(args, must_exist=False, **sparse_options(args)) as store:
        manifest = read_manifest(store)
        check_model(manifest, requested)
        source = early if early is not None and (requested or manifest is None) else \
            resolve_model(manifest.model if manifest else DEFAULT_MODEL)
        with quiet_libraries(), Stage("Loading model", enabled=progress):
            embedding = load_embedding(source, **backend_option(args))
        if ray is None:
            job.indexer = Indexer(store, embedding, model_name=source.name, progress=BarProgress(progress),
                                  prune=not args.keep_missing)
            summary = job.indexer.index(args.paths)
        else:
            summary = _index_on_ray(ray, args, store, embedding, source.name, progress)
            if not args.keep_missing:
                from ..ingest import prune

                summary.pruned = True
                summary.removed = {f.label for f in prune(store, [p for p in args.paths if os.path.isdir(p)])}
        if args.keep_missing:
            from ..ingest import gone_files

            summary.missing_kept = {f.label for f in gone_files(store, args.paths)}
        if store.schema is not None:  # also after a run that wrote nothing: an earlier one may have stopped before it
            store.optimize()
    return report_index(summary, args.strict)


def run_interruptibly(job: Callable[[], T], cancel: Optional[Callable[[], None]]) -> T:
    """Run ``job`` in a worker thread, so Ctrl-C reaches this (main) thread at once, whatever the job is
    doing (importing torch, loading a model, a model batch: C code that would hold a Ctrl-C back for
    seconds on the main thread). On Ctrl-C, ``cancel`` asks the job to stop at its next step; a job still
    busy after ``STOP_GRACE_S`` is left behind: the process exits now, as a kill would, which the store's
    write-ahead log (and its crash-safe creation) makes safe: the same command resumes."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="mmst-index-job", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        if cancel is not None:
            cancel()
        worker.join(STOP_GRACE_S)
        if worker.is_alive():
            print(INTERRUPTED_MESSAGE, file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(INTERRUPTED_EXIT)  # the job is inside a step; its writes so far are in the WAL
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _index_on_ray(ray: object, args: argparse.Namespace, store: object, embedding: object, name: str,
                  progress: bool) -> object:
    from ..distributed import RayOptions, ray_index
    from ..distributed._ray import ensure_ray

    options = RayOptions(actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor, progress=progress)
    started = ensure_ray()
    try:
        return ray_index(args.paths, store, embedding, options, model_name=name)  # type: ignore[arg-type]
    finally:
        if started:
            ray.shutdown()  # type: ignore[attr-defined]


def report_index(summary: object, strict: bool) -> int:
    """Print a job's summary (stdout) and its problems (stderr); the exit status."""
    from ..ingest import format_problems, format_summary

    print("\n".join(format_summary(summary)))  # type: ignore[arg-type]
    problems = format_problems(summary)  # type: ignore[arg-type]
    if problems:
        print("\n".join(problems), file=sys.stderr)
    return STRICT_EXIT if strict and summary.skipped else 0  # type: ignore[attr-defined]
