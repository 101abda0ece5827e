"""The one URL policy every component shares (reader, embedding, reranker, CLI): bounded HTTP(S) fetching.

- **Opt-in.** Nothing is fetched unless ``FetchOptions.allow_urls`` (each component's ``allow_urls``
  field, default False): an image reference that happens to be a URL must not make a library call
  the network on its own. ``file://`` URLs are never read as files (the caller passes the path itself).
- **Public addresses only, by default.** Loopback, link-local (cloud metadata at 169.254.169.254),
  private, shared, multicast and reserved addresses are refused unless ``allow_private_urls``. The
  check runs on the addresses DNS returns, the connection goes to the checked address (so a second
  lookup cannot swap it), and it runs again on every redirect.
- **A total deadline.** ``timeout`` bounds the whole download: connect, redirects, headers and body.
  A server that drip-feeds one byte at a time is cut off when the deadline passes, not after each
  read's own timeout.
- **A byte limit** (declared and actual), at most ``MAX_REDIRECTS`` redirects, and only to http(s).

The standard library is enough here and keeps the core free of an HTTP client dependency. Proxies from
the environment are not used: the address checks need the real peer.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Union
from urllib.parse import urljoin, urlsplit

from .errors import ImageLoadError

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 1 << 16
"""Bytes asked for per read: ``read1`` returns what has arrived, so the deadline is checked between reads."""
from .defaults import DEFAULT_MAX_DOWNLOAD_BYTES as DEFAULT_MAX_BYTES  # noqa: E402
from .defaults import DEFAULT_URL_TIMEOUT_S as DEFAULT_TIMEOUT_S  # noqa: E402

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class FetchOptions:
    """The URL policy and the limits for one download (see the module docstring)."""

    timeout: float = DEFAULT_TIMEOUT_S
    """Seconds the whole download may take: connect, redirects, headers and body together."""
    max_bytes: int = DEFAULT_MAX_BYTES
    user_agent: str = "llama-index-mm-st"
    allow_urls: bool = False
    """Fetch http(s) URLs at all."""
    allow_private_urls: bool = False
    """Also fetch from loopback, link-local and private addresses (intranet use)."""


def is_url(text: str) -> bool:
    """True for http(s) URLs, the only remote references we fetch."""
    return urlsplit(text).scheme.lower() in ALLOWED_SCHEMES


def is_file_url(text: str) -> bool:
    """True for ``file:`` URLs, which are refused everywhere rather than read as local paths."""
    return text[:5].lower() == "file:"


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")


def unsupported_scheme(text: str) -> str | None:
    """The scheme of a string written as a URL (``ftp://...``, ``s3://...``) that is neither http(s) nor
    ``file:`` (which each have their own rule), lower-cased; None otherwise. Such a string is refused as
    "unsupported URL scheme X" under the caller's own string, never read as a relative path (a one-letter
    scheme is a Windows drive, and a path such as ``notes:v2.txt`` has no ``//``)."""
    match = _URL_SCHEME.match(text)
    scheme = match.group(1).lower() if match else None
    return scheme if scheme is not None and scheme not in ALLOWED_SCHEMES and scheme != "file" else None


def refuse_file_url(label: str) -> ImageLoadError:
    """The error for a ``file:`` URL given as an image: named, with what to do instead."""
    return ImageLoadError(label, "file:// URLs are refused; pass the file's path instead")


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_global and not address.is_multicast


def _addresses(url: str, host: str, port: int, options: FetchOptions) -> list[str]:
    """The resolved addresses the policy allows, in resolver order; an error naming the URL otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageLoadError(url, f"cannot resolve host {host!r} ({exc})") from None
    found = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if options.allow_private_urls:
        return found
    allowed = [a for a in found if _public(ipaddress.ip_address(a))]
    if not allowed:
        raise ImageLoadError(
            url,
            f"host {host!r} resolves to a loopback, link-local or private address ({', '.join(found)}); "
            "refused (allow_private_urls=True allows intranet addresses)",
        )
    return allowed


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address already checked, so a second DNS lookup cannot change the peer."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self.raw_socket: socket.socket | None = None

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.raw_socket = self.sock


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to a checked address; the certificate is still verified against the host name."""

    default_port = DEFAULT_PORTS["https"]
    _context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)
        self.raw_socket = self.sock


class _Deadline:
    """Seconds left, and a watchdog that shuts the socket at the deadline so no blocked read outlives it."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url, self.seconds = url, seconds
        self.end = time.monotonic() + seconds
        self.expired = False

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise self.error()
        return remaining

    def error(self) -> ImageLoadError:
        return ImageLoadError(self.url, f"download did not finish within the deadline of {self.seconds} s")

    def guard(self, connection: _PinnedHTTPConnection) -> threading.Timer:
        def expire() -> None:
            self.expired = True
            if connection.raw_socket is not None:
                try:
                    connection.raw_socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed: nothing left to interrupt

        timer = threading.Timer(max(0.0, self.end - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        return timer


def fetch_bytes(url: str, options: FetchOptions = FetchOptions()) -> bytes:
    """Download ``url`` under the policy and limits; any failure is an ``ImageLoadError`` naming the URL."""
    if is_file_url(url):
        raise refuse_file_url(url)
    if not is_url(url):
        raise ImageLoadError(url, "only http and https URLs are fetched")
    if not options.allow_urls:
        raise ImageLoadError(url, "URL fetching is off; pass allow_urls=True to fetch http(s) images")
    deadline = _Deadline(url, options.timeout)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        status, location, body = _get(current, options, deadline)
        if status not in REDIRECT_STATUSES:
            return body
        if not location:
            raise ImageLoadError(url, f"HTTP {status} redirect without a Location header")
        target = urljoin(current, location)
        if urlsplit(target).scheme.lower() not in ALLOWED_SCHEMES:
            raise ImageLoadError(url, f"HTTP error {status}: redirect to a {urlsplit(target).scheme}: URL refused")
        current = target
    raise ImageLoadError(url, f"more than {MAX_REDIRECTS} redirects")


def _get(url: str, options: FetchOptions, deadline: _Deadline) -> tuple[int, str | None, bytes]:
    """One request: (status, Location header, body); the body is read only for a final answer."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if not host:
        raise ImageLoadError(url, "the URL has no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ImageLoadError(url, f"invalid port ({exc})") from None
    address = _addresses(url, host, port, options)[0]
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = kind(host, port, address, timeout=deadline.left())
    watchdog = deadline.guard(connection)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={"User-Agent": options.user_agent, "Host": parts.netloc})
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES:
            return response.status, response.getheader("Location"), b""
        if response.status >= 400:
            raise ImageLoadError(url, f"HTTP error {response.status}: {response.reason}")
        return response.status, None, _read_body(url, response, options, deadline)
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired or time.monotonic() >= deadline.end:
            raise deadline.error() from None
        raise ImageLoadError(url, f"cannot fetch ({exc})") from None
    finally:
        watchdog.cancel()
        connection.close()


def _read_body(url: str, response: http.client.HTTPResponse, options: FetchOptions, deadline: _Deadline) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > options.max_bytes:
        raise ImageLoadError(url, f"{declared} bytes is over the limit of {options.max_bytes}")
    chunks: list[bytes] = []
    size = 0
    while True:
        deadline.left()
        chunk = response.read1(READ_CHUNK)
        if not chunk:
            if deadline.expired:
                raise deadline.error()
            return b"".join(chunks)
        size += len(chunk)
        if size > options.max_bytes:
            raise ImageLoadError(url, f"response is over the limit of {options.max_bytes} bytes")
        chunks.append(chunk)
