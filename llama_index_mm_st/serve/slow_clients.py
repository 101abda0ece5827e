"""A bound on how long a connection may take to send a request's headers (slowloris).

uvicorn sets no timeout on a connection that never completes its first request's headers (h11 and
httptools alike; ``timeout_keep_alive`` runs only between requests, and a byte of the next request
stops it), so a client that opens connections and sends a header line now and then holds them for
ever. Here uvicorn's own HTTP protocol class is extended: a timer starts when a connection opens, and
when the first byte of a later request arrives on a kept-alive one; it stops when the headers are
complete (uvicorn starts the request's cycle). A connection whose timer runs out is closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

log = logging.getLogger("llama_index_mm_st.serve")

HEADERS_TIMEOUT_S = 10.0
"""Seconds a client has to send a request's headers (``mmst serve --headers-timeout``). Headers are a few
hundred bytes: a real client sends them at once, even on a slow link; nginx allows 60 s, Node.js 60 s.
An idle kept-alive connection is not affected (it is closed after ``runner.KEEP_ALIVE_S``)."""


def headers_timeout_protocol(seconds: float, base: Optional[type] = None) -> type:
    """uvicorn's HTTP protocol class (``base``, default the one it would choose: httptools if installed,
    else h11) with the headers timer; pass it as ``uvicorn.Config(http=...)``."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol

    class HeadersTimeoutProtocol(base):  # type: ignore[valid-type, misc]
        _headers_timer: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._headers_timer is None and self._awaiting_headers():
                self._arm()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            if not self._awaiting_headers():
                self._disarm()  # the headers are complete: the request's cycle has begun

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or bool(cycle.response_complete)

        def _arm(self) -> None:
            self._disarm()
            self._headers_timer = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._headers_timer is not None:
                self._headers_timer.cancel()
                self._headers_timer = None

        def _expire(self) -> None:
            self._headers_timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                log.debug("closed a connection that sent no complete request headers in %g s", seconds)
                self.transport.close()

    HeadersTimeoutProtocol.__name__ = f"HeadersTimeout{base.__name__}"
    return HeadersTimeoutProtocol
