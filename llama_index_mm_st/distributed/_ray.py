"""Ray is an optional extra: imported only when a Ray job runs, never by ``import llama_index_mm_st``."""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import MissingDependencyError


def require_ray() -> ModuleType:
    """The ``ray`` module, or ``MissingDependencyError`` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray without its data library can't run the job
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray") from exc
    return ray


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Join ``RAY_ADDRESS`` when set, else start a local instance, unless Ray is already up in this
    process (a test's shared instance). Returns True when this call started or joined it."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    return True
