"""An embedded store's lock, taken before anything else, and a record of who holds it.

An Edge store is one process's: ``<path>/<collection>/mmst.lock`` is held while it is open, so a
second writer gets ``StoreLockedError`` instead of the engine's WAL error. A runner (``mmst index``)
takes it first, with ``reserve``, before it imports the engine, walks a file or loads a model: a
second writer is refused in a fraction of a second. The store that then opens the folder in the same
process takes the reserved lock over (``take``); any other opener, in this process or another, is
refused. This module imports only ``filelock``, so it costs nothing before the lock is held.

The holder writes who it is beside the lock (``mmst.lock.json``: PID, command line with secrets left
out, host, since when, and the URL when it is a server, ``record_serving``), so a refusal names the
holder and the way forward: stop it, or send documents through it when it serves the index. The
record sits beside the lock file, not in it: filelock truncates the lock file on every attempt to take
it (3.x), so a refused opener would wipe what it came to read. Only the holder writes the record, and
it removes it before it lets go of the lock; a record left by a killed holder is never read, since
only a held lock's record is (and the next holder writes its own at once).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import filelock

from .errors import StoreLockedError

LOCK_FILE = "mmst.lock"
HOLDER_FILE = "mmst.lock.json"
SECRET_FLAGS = ("--api-key", "--key", "--token", "--password", "--secret")
"""Command-line flags whose value is never written to the holder record (it is readable on disk)."""

_RESERVED: dict[str, "StoreLock"] = {}
"""Locks a runner took early, by store folder, until the store that opens the folder takes them."""
_HELD: dict[str, "StoreLock"] = {}
"""Every lock this process holds, by store folder (``record_serving`` finds a server's there)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a store: its process, command line (secrets redacted), host, since when (epoch
    seconds) and, for a server, the URL that serves the index."""

    pid: int
    command: str
    host: str
    since: float
    serving: Optional[str] = None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"process {self.pid} ({self.command}) since {when}" + ("" if self.host == socket.gethostname()
                                                                     else f" on {self.host}")


def command_line(argv: Optional[list[str]] = None) -> str:
    """This process's command line as a user would type it (``sys.orig_argv``: the interpreter's own
    flags included), values of secret flags replaced by ``***`` and ``-c`` code shortened."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    if len(argv) > 1 and Path(argv[1]).name in ("mmst", "mmst.exe"):
        argv = argv[1:]  # the console script: what the user typed
    elif argv[1:3] == ["-m", "llama_index_mm_st.cli"]:
        argv = ["mmst", *argv[3:]]
    if argv:
        argv[0] = Path(argv[0]).name
    shown, hide_next, code_next = [], False, False
    for arg in argv:
        if hide_next or code_next:
            shown.append("***" if hide_next else "'...'" if len(arg) > 40 or "\n" in arg else repr(arg))
            hide_next = code_next = False
            continue
        flag, equals, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            shown.append(f"{flag}=***" if equals else arg)
            hide_next = not equals
            continue
        code_next = arg == "-c" and not shown[1:]  # the interpreter's -c, not a program's flag
        shown.append(arg if arg and not any(c.isspace() for c in arg) else repr(arg))
    return " ".join(shown) or "python"


class StoreLock:
    """A store folder's lock and its holder record: ``is_locked`` and ``release`` are what stores use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = filelock.FileLock(str(folder / LOCK_FILE))
        self._holder: Optional[Holder] = None

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise locked_error(self.folder) from None
        self._holder = Holder(os.getpid(), command_line(), socket.gethostname(), time.time())
        self._write()
        _HELD[os.path.realpath(self.folder)] = self

    def serving(self, url: str) -> None:
        """Record that this process serves the store at ``url`` (a refusal then says to send documents there)."""
        if self._holder is not None:
            self._holder = replace(self._holder, serving=url)
            self._write()

    def release(self) -> None:
        if _HELD.get(os.path.realpath(self.folder)) is self:
            del _HELD[os.path.realpath(self.folder)]
        if self._holder is not None:
            (self.folder / HOLDER_FILE).unlink(missing_ok=True)
            self._holder = None
        if self._lock.is_locked:
            self._lock.release()

    def _write(self) -> None:
        """The record, replaced whole (a reader never sees half of it); a folder that can't take it
        (read-only) leaves refusals without a name, never the lock untaken."""
        if self._holder is None:
            return
        target = self.folder / HOLDER_FILE
        temporary = target.with_name(f".{HOLDER_FILE}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(asdict(self._holder)), encoding="utf-8")
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)


def record_serving(folder: Union[str, Path], url: str) -> bool:
    """Record in the holder record of the store at ``folder`` (held by this process) that this process
    serves it at ``url``; False when this process does not hold it."""
    lock = _HELD.get(os.path.realpath(folder))
    if lock is None:
        return False
    lock.serving(url)
    return True


def read_holder(folder: Union[str, Path]) -> Optional[Holder]:
    """The record of whoever holds the store at ``folder``, or None (none written, or unreadable)."""
    try:
        data: Any = json.loads((Path(folder) / HOLDER_FILE).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["command"]), str(data["host"]), float(data["since"]),
                      data.get("serving") if isinstance(data.get("serving"), str) else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def locked_error(folder: Path) -> StoreLockedError:
    """The refusal: who holds the store (when it said), and what to do about it."""
    holder = read_holder(folder)
    if holder is None or (holder.pid == os.getpid() and holder.host == socket.gethostname()):
        where = "another store object in this process" if holder is not None else "another process or store object"
        return StoreLockedError(f"the store at {folder} is already open ({where} holds it); close it there first",
                                holder)
    if holder.serving:
        advice = (f"it serves this index at {holder.serving}: send documents through it ('mmst index PATH --server "
                  f"{holder.serving}', or POST {holder.serving}/v1/documents) and search it there, or stop it "
                  f"(kill {holder.pid}) first")
    else:
        advice = f"wait for it to finish, or stop it (kill {holder.pid}), then run this again"
    return StoreLockedError(f"the store at {folder} is already open in {holder.describe()}; {advice}", holder)


def _acquire(folder: Path) -> StoreLock:
    lock = StoreLock(folder)
    lock.acquire()
    return lock


def take(folder: Union[str, Path]) -> StoreLock:
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
    if not made or not folder.exists() or set(os.listdir(folder)) - {LOCK_FILE, HOLDER_FILE}:
        return
    (folder / LOCK_FILE).unlink(missing_ok=True)
    for path in reversed(made):
        try:
            path.rmdir()  # only while empty: anything else put there stays
        except OSError:
            return
