"""Request bodies to checked values: the one JSON parser every route uses, bounded and strict.

Python's ``json`` module parses recursively (a body nested 50,000 deep raises ``RecursionError``), and it
accepts what JSON does not (``NaN``, ``Infinity``, ``1e400`` read as infinity, lone UTF-16 surrogates),
which would reach a model or the engine as values nothing downstream expects. So, before and after
``json.loads``:

- **nesting** is measured without recursion (brackets outside strings, a running sum over the bytes) and
  refused over ``MAX_JSON_DEPTH``: 400 ``too_deep``;
- **numbers** must be finite: ``NaN``, ``Infinity`` and a float that overflows are 400 ``invalid_number``
  naming the field (``rrf_weights.text``);
- **strings** (keys too) must be Unicode text: a lone surrogate (``"\\ud800"``) is 400 ``invalid_text``
  naming the field (``input[2]``);
- the body must be one JSON object (422), and then fit the route's schema (422 naming the field).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional, Type, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from .errors import APIError, validation_error

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a body may have. The deepest of our own shapes is 5
(``filters`` with a nested ``filters`` group); 32 leaves room for filter groups and keeps a hostile
body far from the parser's recursion limit."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_CHUNK = 1 << 20
_QUOTE = ord('"')
_OPENS = np.zeros(256, dtype=bool)
_OPENS[[ord("["), ord("{")]] = True
_CLOSES = np.zeros(256, dtype=bool)
_CLOSES[[ord("]"), ord("}")]] = True

Model = TypeVar("Model", bound=BaseModel)


class _NonFinite:
    """What the parser puts where a number is not finite, so the walk can name the field it is in."""

    def __init__(self, text: str) -> None:
        self.text = text


def json_depth(raw: bytes, stop_above: Optional[int] = None) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, measured without recursion and in bounded
    memory: the bytes are lexed a chunk at a time (escapes blanked with ``bytes.replace``, then which
    brackets lie inside strings with numpy), carrying the state across chunks. Exact for any valid JSON
    prefix (all the parser ever recurses over); stops early once the depth is over ``stop_above``."""
    depth = deepest = 0
    in_string, escaped = 0, False  # carried from one chunk to the next
    for start in range(0, len(raw), _CHUNK):
        piece = raw[start : start + _CHUNK]
        if escaped:  # the last chunk ended with a backslash: this chunk's first byte is escaped
            piece = b"_" + piece[1:]
        quoted = b'"' in piece
        if not quoted and in_string:
            escaped = piece.endswith(b"\\") and _unpaired_backslash(piece)
            continue  # all of it inside one long string (base64 data, say)
        plain = piece.replace(b"\\\\", b"__").replace(b'\\"', b"__")  # same length: escapes blanked
        escaped = plain.endswith(b"\\")
        chunk = np.frombuffer(plain, dtype=np.uint8)
        steps = _OPENS[chunk].astype(np.int8) - _CLOSES[chunk].astype(np.int8)
        if quoted:
            quotes = np.cumsum(chunk == _QUOTE, dtype=np.int32) + in_string
            steps[quotes % 2 == 1] = 0  # inside a string (an opening quote itself is no bracket)
            in_string = int(quotes[-1] % 2)
        levels = np.cumsum(steps, dtype=np.int64)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


def _unpaired_backslash(piece: bytes) -> bool:
    """Whether ``piece`` ends in an odd run of backslashes (the last one escapes what follows)."""
    return (len(piece) - len(piece.rstrip(b"\\"))) % 2 == 1


def parse_json(raw: bytes) -> Any:
    """The value of a JSON body, refused (``APIError``) where it is not JSON a server should take."""
    if not raw.strip():
        raise APIError(400, "the body is empty: send a JSON object", code="invalid_json")
    brackets = raw.count(b"[") + raw.count(b"{")  # fewer than the limit can't nest deeper than it
    if brackets > MAX_JSON_DEPTH and json_depth(raw, stop_above=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise APIError(400, f"the body is nested more than {MAX_JSON_DEPTH} deep; at most {MAX_JSON_DEPTH} levels of arrays and objects "
                            "are accepted", code="too_deep")
    try:
        value = json.loads(raw, parse_constant=_NonFinite, parse_float=_float)
    except RecursionError:  # not reached after the depth check; kept so no parse can become a 500
        raise APIError(400, "the body is nested too deep", code="too_deep") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise APIError(400, f"the body is not valid JSON ({exc})", code="invalid_json") from None
    _check_values(value)
    return value


def parse_object(raw: bytes) -> dict[str, Any]:
    """A body that must be one JSON object (every POST route's)."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise APIError(422, f"the body must be a JSON object, not {_json_type(value)}", code="validation_error")
    return value


def validated(model: Type[Model], payload: dict[str, Any]) -> Model:
    """``payload`` as the route's schema (422 naming the first field that does not fit)."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def parse_body(raw: bytes, model: Type[Model]) -> Model:
    return validated(model, parse_object(raw))


def _float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _check_values(value: Any) -> None:
    """Walk the parsed value (with a stack, not recursion) for non-finite numbers and invalid text."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, dict):
            for key, member in item.items():
                _check_text(key, where)  # a key is named by the object that holds it
                stack.append((member, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((member, f"{where}[{index}]") for index, member in enumerate(item))
        elif isinstance(item, _NonFinite):
            raise APIError(400, f"{where or 'the body'}: {item.text} is not a finite number (JSON has no NaN or "
                                "Infinity); send a finite number", code="invalid_number", param=where or None)


def _check_text(text: str, where: str) -> None:
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise APIError(400, f"{where or 'the body'}: the text holds a lone UTF-16 surrogate (an escape such as "
                            "\\ud800 without its pair), which is not Unicode text", code="invalid_text",
                       param=where or None)


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
