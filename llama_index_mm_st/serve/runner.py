"""Run an app on uvicorn with a graceful stop: on SIGTERM (or SIGINT), stop admitting, finish, then exit.

uvicorn's own stop closes the listening socket at once, so a request that arrives during the stop
gets a connection error, and a load balancer still polling ``/health`` learns nothing. Here the first
signal only turns the server to ``stopping``: new requests and ``/health`` get 503 (with
``Retry-After``), the requests already taken run to the end, and the port closes once none is left
and ``drain_s`` has passed (time for the balancer to see the 503). A second signal, or
``max_drain_s``, stops at once. The exit status is 0 after a graceful stop, 1 when loading failed.
"""

from __future__ import annotations

import logging
import time
from types import FrameType
from typing import Any, Optional

from ..errors import MissingDependencyError
from .lifecycle import ServerState

log = logging.getLogger("llama_index_mm_st.serve")
KEEP_ALIVE_S = 75
"""Idle keep-alive connections stay open this long: longer than a load balancer's usual idle timeout (60 s),
so the balancer closes an idle connection first and never sends a request on one the server just closed."""


def make_server(app: Any, host: str, port: int, *, drain_s: float = 0.0, max_drain_s: float = 600.0,
                log_level: str = "info") -> Any:
    """A uvicorn ``Server`` for ``app`` (from ``create_app``) with the graceful stop described above."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", "serve") from exc
    state: ServerState = app.state.server

    class DrainingServer(uvicorn.Server):
        stop_requested_at: Optional[float] = None

        def handle_exit(self, sig: int, frame: Optional[FrameType]) -> None:
            if self.stop_requested_at is None:
                self.stop_requested_at = time.monotonic()
                state.begin_stopping()
                log.info("stopping: finishing %d request(s) in flight", state.in_flight)
            elif self.should_exit:
                self.force_exit = True
            else:
                self.should_exit = True

        async def on_tick(self, counter: int) -> bool:
            if state.phase == "failed" and not self.should_exit:
                self.should_exit = True  # nothing to serve: the runner exits with an error
            started = self.stop_requested_at
            if started is not None and not self.should_exit:
                waited = time.monotonic() - started
                if (state.in_flight == 0 and waited >= drain_s) or waited >= max_drain_s:
                    self.should_exit = True
            return bool(await super().on_tick(counter))

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=max(1, int(max_drain_s)), lifespan="on",
                            timeout_keep_alive=KEEP_ALIVE_S)
    return DrainingServer(config)


def run(app: Any, host: str, port: int, *, drain_s: float = 0.0, max_drain_s: float = 600.0,
        log_level: str = "info") -> int:
    """Serve until stopped; the exit status (0 after a graceful stop, 1 when the models failed to load)."""
    server = make_server(app, host, port, drain_s=drain_s, max_drain_s=max_drain_s, log_level=log_level)
    server.run()
    state: ServerState = app.state.server
    return 1 if state.phase == "failed" else 0
