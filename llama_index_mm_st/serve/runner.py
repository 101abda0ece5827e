"""Run an app on uvicorn with a graceful stop: on SIGTERM (or SIGINT), stop admitting, finish, then exit.

uvicorn's own stop closes the listening socket at once, so a request that arrives during the stop
gets a connection error, and a load balancer still polling ``/health`` learns nothing. Here the first
signal only turns the server to ``stopping``: new requests and ``/health`` get 503 (with
``Retry-After``), the requests already taken run to the end, and the port closes once none is left
and ``drain_s`` has passed (time for the balancer to see the 503). A second signal, or
``max_drain_s``, stops at once. The exit status is 0 after a graceful stop, 1 when loading failed.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from types import FrameType
from typing import Any, Optional

from ..errors import MissingDependencyError
from .lifecycle import ServerState
from .slow_clients import HEADERS_TIMEOUT_S, headers_timeout_protocol

log = logging.getLogger("llama_index_mm_st.serve")
KEEP_ALIVE_S = 75
"""Idle keep-alive connections stay open this long: longer than a load balancer's usual idle timeout (60 s),
so the balancer closes an idle connection first and never sends a request on one the server just closed."""


def make_server(app: Any, host: str, port: int, *, drain_s: float = 0.0, max_drain_s: float = 600.0,
                log_level: str = "info", headers_timeout_s: float = HEADERS_TIMEOUT_S) -> Any:
    """A uvicorn ``Server`` for ``app`` (from ``create_app``) with the graceful stop described above, and
    connections closed that send no complete request headers in ``headers_timeout_s`` (``slow_clients``)."""
    if not headers_timeout_s > 0:
        raise ValueError(f"headers_timeout_s must be > 0, got {headers_timeout_s!r}")
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
                            timeout_keep_alive=KEEP_ALIVE_S, http=headers_timeout_protocol(headers_timeout_s))
    return DrainingServer(config)


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything starts (uvicorn would bind only after the app's startup
    ran and reported complete): a port in use is one ``OSError`` naming the address, and nothing else
    is printed. Port 0 picks a free port (``getsockname()`` says which)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        in_use = exc.errno == errno.EADDRINUSE
        error = OSError(f"cannot listen on {host}:{port}: " + ("the port is in use (another server?); choose another "
                                                               "with --port" if in_use else exc.strerror or str(exc)))
        error.errno = exc.errno
        raise error from None
    sock.set_inheritable(True)
    return sock


def run(app: Any, host: str, port: int, *, drain_s: float = 0.0, max_drain_s: float = 600.0,
        log_level: str = "info", sock: Optional[socket.socket] = None,
        headers_timeout_s: float = HEADERS_TIMEOUT_S) -> int:
    """Serve until stopped; the exit status (0 after a graceful stop, 1 when the models failed to load).
    ``sock``: a socket from ``listen`` (else one is bound here, before the app starts)."""
    server = make_server(app, host, port, drain_s=drain_s, max_drain_s=max_drain_s, log_level=log_level,
                         headers_timeout_s=headers_timeout_s)
    sock = sock or listen(host, port)
    server.run(sockets=[sock])
    state: ServerState = app.state.server
    return 1 if state.phase == "failed" else 0
