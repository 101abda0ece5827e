"""A memory cap for one benchmark process: a Linux memory cgroup (v1 or v2) the process moves into.

What the process allocates after the move (an opened store, its queries) is charged to the cgroup,
mapped file pages included. At the cap the kernel evicts file pages (memory-mapped segments that can
be read again) before it fails, so serving within the cap shows how much memory the store really
needs, as opposed to how much page cache it keeps while memory is free. Needs root.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOTS = (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))  # v1, then v2 (unified)


def enter(limit_mb: int, name: str) -> Path:
    """Create the cgroup ``name`` capped at ``limit_mb``, move this process into it; returns its directory."""
    for root in _ROOTS:
        v1 = root.name == "memory"
        limit_file = "memory.limit_in_bytes" if v1 else "memory.max"
        if not root.is_dir() or (not v1 and not (root / "cgroup.controllers").exists()):
            continue
        group = root / name
        group.mkdir(exist_ok=True)
        (group / limit_file).write_text(str(limit_mb * 1024 * 1024))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        return group
    raise RuntimeError("no writable memory cgroup (needs Linux cgroups and root)")


def stats(group: Path) -> dict[str, float]:
    """The cgroup's charged memory now and at its peak (MB), and how often it hit the cap."""
    if (group / "memory.usage_in_bytes").exists():  # v1
        read = {"now_mb": "memory.usage_in_bytes", "peak_mb": "memory.max_usage_in_bytes"}
        found = {k: int((group / f).read_text()) / 2**20 for k, f in read.items()}
        found["cap_hits"] = int((group / "memory.failcnt").read_text())
        return found
    events = dict(line.split() for line in (group / "memory.events").read_text().splitlines())
    peak = group / "memory.peak"
    return {"now_mb": int((group / "memory.current").read_text()) / 2**20,
            "peak_mb": int(peak.read_text()) / 2**20 if peak.exists() else float("nan"),
            "cap_hits": int(events.get("max", 0))}


def remove(name: str) -> None:
    """Remove the cgroup ``name`` once its processes have exited (from outside it)."""
    for root in _ROOTS:
        try:
            (root / name).rmdir()
        except OSError:
            pass
