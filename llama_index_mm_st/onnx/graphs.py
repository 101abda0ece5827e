"""Cached graphs of a checkpoint's parts: the key, the fp32 export, the int8 form on request.

Shared by the embedding (one graph per modality) and the rerankers (a cross-encoder; BLIP's two
towers): each supplies what to trace (a ``GraphSpec``, made only when a build is needed) and a name
for the part, and gets a verified, cached graph file back, or ``ExportFailed`` with the reason.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from .cache import CachedGraph, GraphCache
from .deps import runtime_versions
from .export import EXPORTER_VERSION, OPSET, GraphSpec, export_fp32, quantize_int8
from .fingerprint import checkpoint_directory, directory_fingerprint, stable_hash

MAX_PARAMETERS = 450_000_000
"""Larger models stay on torch: an fp32 graph over ONNX's 2 GB single-file limit needs external data."""


def checkpoint_fingerprint(checkpoint: Optional[str], cache: GraphCache, parameters: int) -> tuple[Optional[str], str]:
    """(the fingerprint of the checkpoint's files, "") or (None, why no graph can be cached for it)."""
    if checkpoint is None:
        return None, "a model given as an object has no checkpoint files to key the graph cache; pass its name or directory"
    if parameters > MAX_PARAMETERS:
        return None, (f"{parameters / 1e6:.0f}M parameters: larger than the {MAX_PARAMETERS / 1e6:.0f}M "
                      "a single-file ONNX graph holds")
    directory = checkpoint_directory(checkpoint)
    if directory is None:
        return None, f"the checkpoint's files ({checkpoint}) can't be found to key the graph cache"
    return directory_fingerprint(directory, cache.memo), ""


def cached_graph(cache: GraphCache, fingerprint: str, part: Sequence[Any], precision: str,
                 make_spec: Callable[[], GraphSpec], model_kwargs: Mapping[str, Any]) -> CachedGraph:
    """The verified fp32 graph of one part (exported if not cached), or its int8 quantization."""
    key = stable_hash([fingerprint, *part, EXPORTER_VERSION, OPSET, runtime_versions(),
                       repr(sorted(model_kwargs.items()))])
    made: list[GraphSpec] = []

    def spec() -> GraphSpec:
        if not made:
            made.append(make_spec())
        return made[0]

    about = {"part": [str(p) for p in part], "fingerprint": fingerprint}
    fp32 = cache.get_or_build(key, lambda path: export_fp32(spec(), path), {**about, "precision": "fp32"})
    if precision == "fp32":
        return fp32
    from ..runtime import cpu_has_vnni

    reduce_range = not cpu_has_vnni()  # see quantize_int8
    return cache.get_or_build(stable_hash([key, "int8", reduce_range]),
                              lambda path: quantize_int8(spec(), fp32.path, path, reduce_range),
                              {**about, "precision": "int8"})
