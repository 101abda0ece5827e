"""``mmst index PATH --ray``: the index job on Ray (``distributed/``), with ``mmst index``'s store,
model resolution, manifest and summary. Imported only when ``--ray`` is given, so plain ``mmst``
never imports Ray."""

from __future__ import annotations

import argparse
import os

from .main import backend_option, new_index_vectors, open_store, read_index, report_index
from .manifest import check_model, write_manifest
from .models import DEFAULT_MODEL, CLIError, load_embedding, model_name, resolve_model
from .progress import Stage, quiet_libraries


def cmd_index_ray(args: argparse.Namespace) -> int:
    from ..distributed import RayOptions, ray_index
    from ..distributed._ray import ensure_ray, require_ray

    if args.ray_actors < 1:
        raise CLIError("--ray-actors must be at least 1")
    if args.ray_gpus_per_actor is not None and args.ray_gpus_per_actor < 0:
        raise CLIError("--ray-gpus-per-actor must be 0 or more")
    ray = require_ray()
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        raise CLIError(f"no such file or folder: {', '.join(missing)}")
    manifest, built = read_index(args)
    requested = model_name(args.model) if args.model else None
    check_model(manifest, requested)
    source = resolve_model(requested or (manifest.model if manifest else DEFAULT_MODEL))
    progress = not args.no_progress
    with quiet_libraries(), Stage("Loading model", enabled=progress):
        embedding = load_embedding(source, **backend_option(args))
    options = RayOptions(actors=args.ray_actors, gpus_per_actor=args.ray_gpus_per_actor, progress=progress)
    started = ensure_ray()
    try:
        with open_store(args, must_exist=False, dim=embedding.dimension,
                        late_interaction=embedding.late_interaction, dense_vectors=new_index_vectors(embedding, built)) as store:
            write_manifest(store, source.name, embedding.dimension)
            summary = ray_index(args.paths, store, embedding, options)
            if summary.added or summary.replaced:
                store.optimize()
    finally:
        if started:
            ray.shutdown()
    return report_index(summary, args.strict)
