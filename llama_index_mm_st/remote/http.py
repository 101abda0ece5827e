"""One server endpoint for the remote clients: URLs, the key, and when to retry, with the I/O doubled only.

As httpx's own ``BaseClient`` does, every decision lives in plain methods (``_decide``); ``post`` and
``apost`` only send and sleep. A 429 or 503 is retried after the server's ``Retry-After`` (seconds or an
HTTP date; capped at ``max_retry_wait``), else after a growing backoff; a refused connection (a server
restarting) is retried the same way. What is left fails with a ``RemoteServerError`` that names the
server, or, for a 4xx that names an item (``param`` ``input[3]``), with a ``RejectedItem`` the caller
turns into that item's own error.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import httpx

from ..errors import RemoteServerError

RETRY_STATUSES = frozenset({429, 503})
ITEM_PARAM = re.compile(r"^(?:input|inputs|documents)\[(\d+)\]$")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 0.5
    max_retry_wait_s: float = 30.0

    def delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_wait_s)
        return min(self.backoff_s * 2 ** attempt, self.max_retry_wait_s)


class RejectedItem(Exception):
    """The server refused one item of the request (a 400 whose ``param`` names it): its index and reason."""

    def __init__(self, index: int, reason: str, code: Optional[str] = None) -> None:
        super().__init__(reason)
        self.index, self.reason, self.code = index, reason, code


@dataclass(frozen=True)
class _Retry:
    delay: float


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class _ErrorBody:
    """An error answer's parts: OpenAI's ``message``, ``param`` and ``code``."""

    message: str
    param: Optional[str] = None
    code: Optional[str] = None


def _error_body(response: httpx.Response) -> _ErrorBody:
    """The error's parts from an OpenAI-shaped body (or ``detail``, or the text)."""
    try:
        body = response.json()
    except ValueError:
        return _ErrorBody(response.text.strip()[:300] or response.reason_phrase)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _ErrorBody(str(error["message"]), error.get("param"), error.get("code"))
        detail = body.get("detail")
        if detail:
            return _ErrorBody((detail if isinstance(detail, str) else str(detail))[:300])
    return _ErrorBody(str(body)[:300])


class Endpoint:
    """A server at ``base_url`` (``http://host:7997`` or ``.../v1``): paths are appended to it."""

    def __init__(self, base_url: str, api_key: Optional[str], timeout: float, retry: RetryPolicy,
                 headers: Optional[dict[str, str]] = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._client: Optional[httpx.Client] = None
        self._async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base_url + path

    # ---- decisions (no I/O)

    def _decide(self, path: str, response: httpx.Response, attempt: int) -> Any:
        """The JSON of a good answer; a ``_Retry`` for a retryable one; raises for the rest."""
        if response.status_code < 300:
            try:
                return response.json()
            except ValueError:
                raise RemoteServerError(self.url(path), "answered with a body that is not JSON",
                                        response.status_code) from None
        if response.status_code in RETRY_STATUSES and attempt < self.retry.max_retries:
            return _Retry(self.retry.delay(attempt, parse_retry_after(response.headers.get("retry-after"))))
        error = _error_body(response)
        param = error.param
        found = ITEM_PARAM.match(param) if isinstance(param, str) and response.status_code == 400 else None
        if found:
            # The item is told by the structured ``param``; the server's message is its reason as sent.
            raise RejectedItem(int(found.group(1)), error.message, error.code)
        raise RemoteServerError(self.url(path), f"answered HTTP {response.status_code}: {error.message}",
                                response.status_code)

    def _unreachable(self, path: str, exc: httpx.HTTPError, attempt: int) -> _Retry:
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) and attempt < self.retry.max_retries:
            return _Retry(self.retry.delay(attempt, None))
        if isinstance(exc, httpx.TimeoutException):
            raise RemoteServerError(self.url(path), f"did not answer within {self.timeout:g} s "
                                                    f"({type(exc).__name__})") from None
        raise RemoteServerError(self.url(path), f"could not be reached ({type(exc).__name__}: {exc}); check the "
                                                "URL and that the server is running") from None

    # ---- I/O

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, headers=self.headers)
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        """One client per event loop (an ``AsyncClient``'s connections belong to the loop that made them)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers)
            self._async_clients[loop] = client
        return client

    def request(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = self._sync_client().request(method, self.url(path), json=body)
                outcome = self._decide(path, response, attempt)
            except httpx.HTTPError as exc:
                outcome = self._unreachable(path, exc, attempt)
            if not isinstance(outcome, _Retry):
                return outcome
            time.sleep(outcome.delay)
            attempt += 1

    async def arequest(self, method: str, path: str, body: Any = None) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._async_client().request(method, self.url(path), json=body)
                outcome = self._decide(path, response, attempt)
            except httpx.HTTPError as exc:
                outcome = self._unreachable(path, exc, attempt)
            if not isinstance(outcome, _Retry):
                return outcome
            await asyncio.sleep(outcome.delay)
            attempt += 1

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
