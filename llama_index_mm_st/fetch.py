"""The one URL policy every component shares (reader, embedding, reranker, CLI): bounded HTTP(S) fetching.

- **Opt-in.** Nothing is fetched unless ``FetchOptions.allow_urls`` (each component's ``allow_urls``
  field, default False): an image reference that happens to be a URL must not make a library call
  the network on its own. ``file://`` URLs are never read as files (the caller passes the path itself):
  ``url_of`` tells a string source apart, and refuses them, for every component.
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
import warnings
from typing import Any, Union
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from .errors import ImageLoadError, ItemError, refuse_unknown

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 1 << 16
"""Bytes asked for per read: ``read1`` returns what has arrived, so the deadline is checked between reads."""
from .defaults import DEFAULT_MAX_DOWNLOAD_BYTES as DEFAULT_MAX_BYTES  # noqa: E402
from .defaults import DEFAULT_URL_TIMEOUT_S as DEFAULT_TIMEOUT_S  # noqa: E402

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class FetchOptions(BaseModel):
    """The URL policy and the limits for one download (see the module docstring): the one fetch policy
    every component holds as its ``fetch`` field (``ImageReader``, ``MultimodalEmbedding``,
    ``MultimodalReranker``), and ``mmst serve``'s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float = Field(default=DEFAULT_TIMEOUT_S, gt=0,
                           description="Seconds the whole download may take: connect, redirects, headers and body.")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, description="Largest download accepted (declared and actual).")
    user_agent: str = "llama-index-mm-st"
    allow_urls: bool = Field(default=False, description="Fetch http(s) URLs at all (off: a URL is a refused item).")
    allow_private_urls: bool = Field(
        default=False, description="Also fetch from loopback, link-local and private addresses (intranet use).")


FLAT_FIELDS = {"allow_urls": "allow_urls", "allow_private_urls": "allow_private_urls"}
"""Keywords every component takes beside ``fetch=`` (shorthands for its fields, kept as they are)."""
DEPRECATED_FIELDS = {"url_timeout": "timeout", "url_max_bytes": "max_bytes", "max_download_bytes": "max_bytes"}
"""The old per-component names of the limits (the reader's ``url_max_bytes``, the embedding's
``max_download_bytes``): still taken, with a ``DeprecationWarning`` naming ``fetch=FetchOptions(...)``."""


FETCH_KEYWORDS = {
    "allow_urls": "Shorthand for fetch=FetchOptions(allow_urls=...): fetch http(s) URLs (off by default).",
    "allow_private_urls": "Shorthand for fetch=FetchOptions(allow_private_urls=...): also loopback, link-local "
                          "and private addresses.",
}
"""The flat keywords, for a component's ``help()`` (``docs.document_parameters``)."""


def with_fetch_policy(component: str, data: dict[str, Any], default: FetchOptions | None = None) -> dict[str, Any]:
    """A component's keywords with its fetch settings gathered into one ``fetch`` (a ``FetchOptions``):
    ``fetch=`` (a ``FetchOptions`` or a dict of its fields) with the flat keywords (``allow_urls``, the
    deprecated ``url_timeout`` ...) applied on top. ``default``: the component's policy when none is given."""
    flat = {key: data.pop(key) for key in [*FLAT_FIELDS, *DEPRECATED_FIELDS] if key in data}
    given = data.get("fetch")
    if not flat and given is None:
        if default is not None:
            data["fetch"] = default
        return data
    base = given if given is not None else (default or FetchOptions())
    fields = dict(base.model_dump() if isinstance(base, FetchOptions) else base)
    for key, value in flat.items():
        if key in DEPRECATED_FIELDS:
            warnings.warn(f"{component}({key}=...) is deprecated: pass fetch=FetchOptions("
                          f"{DEPRECATED_FIELDS[key]}=...) (llama_index_mm_st.fetch)", DeprecationWarning, stacklevel=4)
        fields[DEPRECATED_FIELDS.get(key, key)] = value
    data["fetch"] = FetchOptions(**fields)
    return data


class FlatFetchFields:
    """Mixin (first among the bases) for a component with a ``fetch: FetchOptions`` field: its
    constructor takes the flat keywords too (``with_fetch_policy``), and the flat names its settings
    had (``reader.allow_urls``, ``embedding.url_timeout`` ...) read ``fetch``, so code that used them
    keeps working."""

    def __init__(self, **data: Any) -> None:
        refuse_unknown(type(self).__name__, data,  # type: ignore[attr-defined]
                       [*type(self).model_fields, *FLAT_FIELDS, *DEPRECATED_FIELDS])
        super().__init__(**with_fetch_policy(type(self).__name__, data))

    @property
    def allow_urls(self) -> bool:
        return self.fetch.allow_urls  # type: ignore[attr-defined, no-any-return]

    @property
    def allow_private_urls(self) -> bool:
        return self.fetch.allow_private_urls  # type: ignore[attr-defined, no-any-return]

    @property
    def url_timeout(self) -> float:
        """Deprecated: ``fetch.timeout``."""
        return self.fetch.timeout  # type: ignore[attr-defined, no-any-return]


def url_of(source: object, label: str, error: type[ItemError] = ImageLoadError,
           instead: str = "pass the file's path instead") -> str | None:
    """The http(s) URL a source is, or None when it is something else (a path, bytes, pixels). The one
    place every component tells a string source apart, so the one place a ``file:`` URL is refused:
    ``error(label, "file:// URLs are refused; <instead>")`` (a file is read from its path, never a URL),
    and any other scheme but http(s): ``error(label, "unsupported URL scheme ftp")`` (``unsupported_scheme``)."""
    if not isinstance(source, str):
        return None
    if source[:5].lower() == "file:":
        raise error(label, f"file:// URLs are refused; {instead}")
    scheme = unsupported_scheme(source)
    if scheme is not None:
        raise error(label, f"unsupported URL scheme {scheme}")
    return source if is_url(source) else None


def is_url(text: str) -> bool:
    """True for http(s) URLs, the only remote references we fetch."""
    return urlsplit(text).scheme.lower() in ALLOWED_SCHEMES


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")


def unsupported_scheme(text: str) -> str | None:
    """The scheme of a string written as a URL (``ftp://...``, ``s3://...``) that is neither http(s) nor
    ``file:`` (which each have their own rule), lower-cased; None otherwise. Such a string is refused as
    "unsupported URL scheme X" under the caller's own string, never read as a relative path (a one-letter
    scheme is a Windows drive, and a path such as ``notes:v2.txt`` has no ``//``)."""
    match = _URL_SCHEME.match(text)
    scheme = match.group(1).lower() if match else None
    return scheme if scheme is not None and scheme not in ALLOWED_SCHEMES and scheme != "file" else None


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
    if url_of(url, url) is None:
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
