"""Progress for the CLI's long stages: one bar per stage, alive at least once a second, one final rate.

A slow model (a VLM on a CPU) can take a minute per chunk of nodes, and loading a model reports
nothing at all, so a bar that only redraws on ``update`` looks hung. A ticker thread redraws the bar
every ``TICK_S`` (the elapsed time moves even while a chunk is running). Rates are averages over the
whole stage (``smoothing=0``), so the bar's last line and the stage's rate agree. When stderr is not
a terminal, nothing is redrawn: each stage writes one line when it ends.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import IO, Any, Iterator, Optional

TICK_S = 0.5


class Stage:
    """A stage of work (``total`` units, or None for one unknown-length step such as loading a model)."""

    def __init__(self, desc: str, total: Optional[int] = None, unit: str = "it", *, enabled: bool = True,
                 stream: Optional[IO[str]] = None, live: Optional[bool] = None) -> None:
        self.desc, self.total, self.unit, self.enabled = desc, total, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.live = enabled and (live if live is not None else _is_terminal(self.stream))
        self.done = 0
        self._start = time.perf_counter()
        self._bar: Any = None
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    def __enter__(self) -> "Stage":
        self._start = time.perf_counter()
        if self.live:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, file=self.stream, smoothing=0,
                             mininterval=0, leave=False, dynamic_ncols=True)
            self._ticker = threading.Thread(target=self._tick, name=f"progress {self.desc}", daemon=True)
            self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._bar.refresh()

    def update(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()  # leave=False: the bar goes, the one summary line below stays
        if self.enabled and exc_type is None:
            print(self.summary(), file=self.stream, flush=True)

    def summary(self) -> str:
        elapsed = time.perf_counter() - self._start
        if self.total is None:
            return f"{self.desc}: done in {elapsed:.1f} s"
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.desc}: {self.done} {self.unit}{'' if self.done == 1 else 's'} in {elapsed:.1f} s ({rate:.1f} {self.unit}/s)"


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence huggingface_hub's download bars and transformers' weight-loading bars while models load:
    the CLI's own "Loading model" stage is the one bar of that stage (and ``--no-progress`` silences it)."""
    import huggingface_hub.utils as hub_utils

    hub_was_on = not hub_utils.are_progress_bars_disabled()
    hub_utils.disable_progress_bars()
    from transformers.utils import logging as transformers_logging  # the model load imports it anyway

    transformers_was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    chatty = logging.getLogger("sentence_transformers")  # "No modules.json found ... initializing" at INFO
    level = chatty.level
    chatty.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        chatty.setLevel(level)
        if hub_was_on:
            hub_utils.enable_progress_bars()
        if transformers_was_on:
            transformers_logging.enable_progress_bar()



def silence_progress() -> None:
    """``--no-progress``: no progress bar from anything this process runs (our stages, tqdm bars of the
    store and the libraries, hub downloads, transformers' weight loading). Set before the libraries are
    imported (they read their settings then) and applied to those already loaded."""
    import os

    os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 reads its defaults from TQDM_* variables
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hub_utils

        hub_utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


class BarProgress:
    """The ingestion job's ``Progress`` as the CLI's bars: one ``Stage`` per stage (nothing when disabled)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def stage(self, name: str, total: Optional[int], unit: str) -> Stage:
        return Stage(name, total, unit, enabled=self.enabled)
