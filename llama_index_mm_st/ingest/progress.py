"""How an ingestion job reports progress: stages with a size, advanced as work is done.

The job knows nothing of terminals: the CLI passes bars (``cli/progress.py``), a server or an
application its own ``Progress``; the default reports nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import ContextManager, Iterator, Optional, Protocol


class StageHandle(Protocol):
    def update(self, count: int) -> None:
        """``count`` more units of the stage are done."""


class Progress(Protocol):
    def stage(self, name: str, total: Optional[int], unit: str) -> ContextManager[StageHandle]:
        """A stage of ``total`` units (None: one step of unknown length), for the length of a ``with``."""


class _Silent:
    def update(self, count: int) -> None:
        """Nothing is reported."""


class NoProgress:
    """Reports nothing."""

    @contextmanager
    def stage(self, name: str, total: Optional[int], unit: str) -> Iterator[StageHandle]:
        yield _Silent()
