"""Whether ONNX Runtime is installed, and the versions that key the graph cache.

Nothing here imports onnxruntime or torch at import time: ``mmst info`` reads cached decisions
without loading either.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any

from ..errors import MissingDependencyError

EXTRA = "onnx"
"""The optional extra that installs ONNX Runtime and the exporter's needs."""


def onnxruntime_available() -> bool:
    """True when ``import onnxruntime`` (and ``onnx``, which quantization needs) would succeed."""
    for name in ("onnxruntime", "onnx"):
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except ValueError:  # sys.modules[name] is None: the import is blocked
            return False
    return True


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or ``MissingDependencyError`` naming the extra."""
    if not onnxruntime_available():
        raise MissingDependencyError("onnxruntime", EXTRA)
    import onnxruntime

    return onnxruntime


def version_of(distribution: str) -> str:
    """An installed distribution's version, read from its metadata (no import); "" when absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def runtime_versions() -> dict[str, str]:
    """What a cached graph depends on besides the checkpoint: the exporter (torch), the model code
    (transformers, sentence-transformers) and the runtime that loads it."""
    runtime = version_of("onnxruntime") or version_of("onnxruntime-gpu")
    return {
        "torch": version_of("torch"),
        "transformers": version_of("transformers"),
        "sentence-transformers": version_of("sentence-transformers"),
        "onnxruntime": runtime,
        "onnx": version_of("onnx"),
    }
