"""Inline data and item labels, shared by image references (``inputs.py``) and media references
(``media_refs.py``), so both decode base64 and shorten a long URL for an error the same way."""

from __future__ import annotations

import base64
import binascii
from typing import Union

from .errors import ItemError

LABEL_LIMIT = 80
"""Longest item label in an error; a data URI or a long URL is cut to this."""


def decode_base64(payload: Union[str, bytes], label: str, error: type[ItemError]) -> bytes:
    """The bytes of inline base64; malformed data raises ``error`` naming the item."""
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise error(label, f"invalid base64 ({exc})") from None


def short_label(text: str, limit: int = LABEL_LIMIT) -> str:
    """``text`` cut in the middle to ``limit`` characters: a long path keeps its file name, a data URI its
    media type, a URL its host and its last segment."""
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]
