"""Slow clients: a connection that never completes its request headers is closed after the headers
timeout (``serve.slow_clients``), while kept-alive idle connections and normal clients are untouched."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.serve.conftest import running_server

TIMEOUT_S = 0.5
PARTIAL = b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def base(serve_models):  # type: ignore[no-untyped-def]
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    app = create_app(Components(serve_models[0]), ServeSettings())
    with running_server(app, headers_timeout_s=TIMEOUT_S) as url:
        yield url


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _closed_after(sock: socket.socket, trickle: bytes = b"", every: float = 0.0) -> float:
    """Seconds until the server closes ``sock`` (recv gives b""), sending ``trickle`` every ``every`` s."""
    start = time.monotonic()
    sock.settimeout(every or 10)
    while time.monotonic() - start < 10:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except TimeoutError:
            sock.sendall(trickle)
        except ConnectionResetError:
            return time.monotonic() - start
    raise AssertionError("the server kept the connection open for 10 s")


def test_a_connection_that_sends_nothing_is_closed(base: str) -> None:
    with _connect(base) as sock:
        assert _closed_after(sock) < TIMEOUT_S + 3


def test_headers_trickled_a_line_at_a_time_are_closed_all_the_same(base: str) -> None:
    with _connect(base) as sock:
        sock.sendall(PARTIAL)
        assert TIMEOUT_S * 0.8 < _closed_after(sock, b"X-Slow: 1\r\n", every=0.1) < TIMEOUT_S + 3


def test_a_kept_alive_connection_idles_and_a_slow_second_request_is_closed(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.post("/v1/embeddings", json={"input": ["a"]}).status_code == 200
        time.sleep(TIMEOUT_S * 3)  # idle past the headers timeout: the keep-alive timeout (75 s) governs idling
        assert client.post("/v1/embeddings", json={"input": ["b"]}).status_code == 200
        assert client.get("/health").status_code == 200
    with _connect(base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in sock.recv(4096)
        time.sleep(TIMEOUT_S * 2)
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request starts, and its headers never end
        assert _closed_after(sock) < TIMEOUT_S + 3


def test_a_slow_body_is_not_cut_by_the_headers_timeout(base: str) -> None:
    body = b'{"input": ["a slow but steady client"]}'
    with _connect(base) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), 8):  # the headers are complete: the body may take its time
            sock.sendall(body[i:i + 8])
            time.sleep(TIMEOUT_S / 3)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
