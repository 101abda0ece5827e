"""``mmst index PATH --ray``: the index job on Ray (``distributed/``), with ``mmst index``'s store,
manifest and summary. Imported only when ``--ray`` is given, so plain ``mmst`` never imports Ray."""

from __future__ import annotations

import argparse

from ..embedding import DEFAULT_MODEL
from .index_job import format_summary
from .main import CLIError, load_embedding, model_id, open_store
from .manifest import check_model, read_manifest, write_manifest


def cmd_index_ray(args: argparse.Namespace) -> int:
    from ..distributed import RayOptions, ray_index
    from ..distributed._ray import ensure_ray, require_ray

    if args.ray_actors < 1:
        raise CLIError("--ray-actors must be at least 1")
    if args.ray_gpus_per_actor is not None and args.ray_gpus_per_actor < 0:
        raise CLIError("--ray-gpus-per-actor must be 0 or more")
    ray = require_ray()
    with open_store(args, must_exist=False) as store:
        manifest = read_manifest(store)
    check_model(manifest, model_id(args.model))
    model = model_id(args.model) or (manifest.model if manifest else DEFAULT_MODEL)
    embedding = load_embedding(model)
    options = RayOptions(actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor, progress=not args.no_progress)
    started = ensure_ray()
    try:
        with open_store(args, must_exist=False, dim=embedding.dimension) as store:
            write_manifest(store, model, embedding.dimension)
            summary = ray_index(args.paths, store, embedding, options)
            if summary.added:
                store.optimize()
    finally:
        if started:
            ray.shutdown()
    print("\n".join(format_summary(summary)))
    return 0
