"""Bounded HTTP(S) fetching: a timeout, a byte limit, and no redirect to another scheme.

The standard library is enough here and keeps the core free of an HTTP client dependency.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ImageLoadError

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class FetchOptions:
    """Limits for one download."""

    timeout: float = 10.0
    max_bytes: int = 50 * 1024 * 1024
    user_agent: str = "llama-index-mm-st"


class _SameSchemeFamilyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): a redirect to file:, ftp: or anything else is refused."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urlsplit(newurl).scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise urllib.error.HTTPError(newurl, code, f"redirect to a {scheme}: URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameSchemeFamilyRedirects)


def is_url(text: str) -> bool:
    """True for http(s) URLs, the only remote references we fetch."""
    return urlsplit(text).scheme.lower() in ALLOWED_SCHEMES


def fetch_bytes(url: str, options: FetchOptions = FetchOptions()) -> bytes:
    """Download ``url`` within the limits; any failure is an ``ImageLoadError`` naming the URL."""
    if not is_url(url):
        raise ImageLoadError(url, "only http and https URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": options.user_agent})
    try:
        with _OPENER.open(request, timeout=options.timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > options.max_bytes:
                raise ImageLoadError(url, f"{declared} bytes is over the limit of {options.max_bytes}")
            data = response.read(options.max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise ImageLoadError(url, f"HTTP error {exc.code}: {exc.msg}") from None
    except urllib.error.URLError as exc:
        raise ImageLoadError(url, f"cannot fetch ({exc.reason})") from None
    except TimeoutError:
        raise ImageLoadError(url, f"timed out after {options.timeout} s") from None
    except OSError as exc:
        raise ImageLoadError(url, f"cannot fetch ({exc})") from None
    if len(data) > options.max_bytes:
        raise ImageLoadError(url, f"response is over the limit of {options.max_bytes} bytes")
    return data
