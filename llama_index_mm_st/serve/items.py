"""Request items to model inputs: media as bytes (never a path on the server), each with its batch cost.

A media item arrives as a ``data:`` URI or, when the server allows URLs, an http(s) URL fetched under
the library's URL policy (``fetch.fetch_bytes``: public addresses only unless private ones are allowed,
a total deadline, a byte limit). Any other string is refused: a server must not read its own files
because a client named them. The header is read here, before the item is queued, so a corrupt or
oversized image is a 400 naming the item at once, and its pixel count is what it costs in a batch.

Costs are shares of one batch's budget (``Limits``): a text costs its token upper bound over
``max_batch_tokens``, an image its source pixels over ``max_batch_pixels``, audio and video their
seconds over ``max_batch_media_seconds``; a batch is full at 1.0.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Optional

from ..errors import ItemError, MissingDependencyError
from ..fetch import FetchOptions, fetch_bytes, url_of
from ..images import DecodeOptions, decode, open_checked
from ..inline import decode_base64
from ..media import MediaLimits
from ..text_limits import UNKNOWN_WINDOW, bound_text, char_limit
from .errors import bad_item
from .settings import Limits

MEDIA_KINDS = ("image", "audio", "video")


@dataclass(frozen=True)
class Prepared:
    """One item ready for the model: text, or the bytes of a media file; and its share of a batch."""

    payload: Any
    cost: float


@dataclass(frozen=True)
class MediaRules:
    """What the server accepts of a media item: its URL policy and the model's own limits."""

    fetch: FetchOptions
    max_pixels: Optional[int]
    media: MediaLimits
    limits: Limits
    text_window: Optional[int]


def text_cost(text: str, rules: MediaRules) -> float:
    """A text's share of the token budget, counted on what the tokenizer is given (the text cut to
    ``text_limits.char_limit`` of the window): its UTF-8 bytes plus 2 bound its tokens, and the model
    reads at most its window of them."""
    window = rules.text_window or UNKNOWN_WINDOW
    tokens = len(bound_text(text, char_limit(window)).encode("utf-8", "surrogatepass")) + 2
    return min(tokens, window) / rules.limits.max_batch_tokens


def media_bytes(value: str, param: str, rules: MediaRules) -> bytes:
    """The bytes of a media item given as a data: URI or an allowed URL; a 400 naming ``param`` otherwise.

    Blocking (a URL is downloaded): call it from a worker thread."""
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if not header.endswith(";base64"):
            raise bad_item(param, "only base64 data: URIs are accepted (data:<type>;base64,<data>)")
        try:
            data = decode_base64(payload, param, ItemError)
        except ItemError as exc:
            raise bad_item(param, exc.reason) from None
        if not data:
            raise bad_item(param, "empty data (zero bytes)")
        return data
    try:
        url = url_of(value, param, ItemError, instead="send the file's contents as a data: URI")
    except ItemError as refused:
        raise bad_item(param, refused.reason) from None
    if url is not None:
        if not rules.fetch.allow_urls:
            raise bad_item(param, "this server fetches no URLs (start it with --allow-urls); send the contents "
                                  "as a data: URI")
        try:
            return fetch_bytes(value, rules.fetch)
        except ItemError as exc:
            raise bad_item(param, exc.reason) from None
    raise bad_item(param, "a media item must be a data: URI (data:image/png;base64,...) or an http(s) URL; "
                          "the server never reads its own files")


def check_header(data: bytes, kind: str, param: str, rules: MediaRules) -> float:
    """Read the item's header (no pixels or samples decoded) and return its cost; a 400 when it is bad."""
    try:
        if kind == "image":
            image = open_checked(BytesIO(data), param, rules.max_pixels)
            width, height = image.size
            image.close()
            return width * height / rules.limits.max_batch_pixels
        from ..media import probe

        info = probe(data, param, rules.media)
        if info.kind != kind:
            raise bad_item(param, f"this is {info.kind}, not {kind}")
        return info.duration_s / rules.limits.max_batch_media_seconds
    except ItemError as exc:
        raise bad_item(param, exc.reason) from None
    except MissingDependencyError as exc:
        raise bad_item(param, str(exc)) from None


def prepare_media(value: str, kind: str, param: str, rules: MediaRules) -> Prepared:
    """Bytes and cost of one media item (blocking: run it in a worker thread)."""
    data = media_bytes(value, param, rules)
    return Prepared(data, check_header(data, kind, param, rules))


def decode_for_model(item: Prepared, param: str, options: DecodeOptions) -> Prepared:
    """An image item decoded now, as the embedding would decode it (``options``: its pixel limit and JPEG
    draft size, so the model sees the same pixels), in the request's own worker thread: the model's
    lane then spends its turn on the forward pass while the next requests' images decode beside it
    (as ``MultimodalEmbedding.embed`` overlaps decoding within one call). Blocking: a worker thread."""
    try:
        return Prepared(decode(BytesIO(item.payload), param, options), item.cost)
    except ItemError as exc:
        raise bad_item(param, exc.reason) from None


def data_uri_payload(value: str, data: bytes) -> str:
    """The base64 of an item: the data URI's own payload when it was one, else the fetched bytes encoded."""
    if value.startswith("data:"):
        return value.partition(",")[2]
    return base64.b64encode(data).decode("ascii")
