"""An embedded store's lock, taken before anything else.

An Edge store is one process's: ``<path>/<collection>/mmst.lock`` is held while it is open, so a
second writer gets ``StoreLockedError`` instead of the engine's WAL error. A runner (``mmst index``)
takes it first, with ``reserve``, before it imports the engine, walks a file or loads a model: a
second writer is refused in a fraction of a second. The store that then opens the folder in the same
process takes the reserved lock over (``take``); any other opener, in this process or another, is
refused. This module imports only ``filelock``, so it costs nothing before the lock is held.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

import filelock

from .errors import StoreLockedError

LOCK_FILE = "mmst.lock"

_RESERVED: dict[str, filelock.FileLock] = {}
"""Locks a runner took early, by store folder, until the store that opens the folder takes them."""


def _acquire(folder: Path) -> filelock.FileLock:
    lock = filelock.FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise StoreLockedError(
            f"the store at {folder} is already open (another process or store object holds it); close it there first"
        ) from None
    return lock


def take(folder: Union[str, Path]) -> filelock.FileLock:
    """The folder's lock for the store opening it: the one this process reserved, else a new one
    (``StoreLockedError`` when someone else holds it). The folder must exist."""
    folder = Path(folder)
    reserved = _RESERVED.pop(os.path.realpath(folder), None)
    return reserved if reserved is not None else _acquire(folder)


@contextmanager
def reserve(folder: Union[str, Path]) -> Iterator[None]:
    """Hold the store folder's lock for the length of a ``with``, from now: the store this process
    opens on the folder inside it takes the lock over (and releases it when it closes). A folder this
    call had to make is removed again when nothing but the lock was put in it (a run that stopped early)."""
    folder = Path(os.path.abspath(folder))
    made = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    try:
        _RESERVED[key] = _acquire(folder)
    except BaseException:
        _remove_if_unused(folder, made)
        raise
    try:
        yield
    finally:
        lock = _RESERVED.pop(key, None)
        if lock is not None:  # no store took it
            lock.release()
        _remove_if_unused(folder, made)


def _remove_if_unused(folder: Path, made: list[Path]) -> None:
    if not made or not folder.exists() or set(os.listdir(folder)) - {LOCK_FILE}:
        return
    (folder / LOCK_FILE).unlink(missing_ok=True)
    for path in reversed(made):
        try:
            path.rmdir()  # only while empty: anything else put there stays
        except OSError:
            return
