"""Errors a route answers with, in the one shape clients of the field read.

The body is OpenAI's (``{"error": {"message", "type", "param", "code"}}``) plus a top-level ``detail``
string, which FastAPI-style clients and LlamaIndex's ``JinaRerank`` read. ``param`` names the bad
field or item (``input[3]``), so a caller (``RemoteMultimodalEmbedding``) can tell which item failed.
Overload and unavailability carry ``Retry-After``, which the OpenAI SDK and our clients honour.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional, Sequence

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An HTTP error answer: status, a message for the caller, and what it is about."""

    def __init__(self, status: int, message: str, *, code: Optional[str] = None, param: Optional[str] = None,
                 retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "server_error"),
                      "param": self.param, "code": self.code},
            "detail": self.message,
        }

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}

    def content(self) -> bytes:
        return json.dumps(self.body()).encode()  # ASCII escapes: a message never fails to encode


class Overloaded(APIError):
    """The queue is full, or the wait would be longer than allowed: 429, retry after ``retry_after``."""

    def __init__(self, message: str, retry_after: float, code: str = "queue_full") -> None:
        super().__init__(429, message, code=code, retry_after=retry_after)


class Unavailable(APIError):
    """Warming up, stopping, or a model worker died: 503."""

    def __init__(self, message: str, code: str, retry_after: Optional[float] = None) -> None:
        super().__init__(503, message, code=code, retry_after=retry_after)


def bad_item(param: str, reason: str) -> APIError:
    """A 400 naming the item: ``input[3]: cannot load image ...``."""
    return APIError(400, f"{param}: {reason}", code="invalid_item", param=param)


def validation_error(errors: Sequence[Mapping[str, Any]]) -> APIError:
    """A 422 naming the first field that does not fit the schema (``input[2]``, ``documents``), or a 400 for
    a body that is not JSON at all."""
    # A union (a string or a list of strings) reports one error per member: the deepest names the item.
    first = max(errors, key=lambda error: len(error.get("loc", ()))) if errors else {}
    if any(error.get("type") == "json_invalid" for error in errors):
        first = next(error for error in errors if error.get("type") == "json_invalid")
        return APIError(400, f"the body is not valid JSON ({first.get('msg')})", code="invalid_json")
    where = _location(first.get("loc", ()))
    message = first.get("msg", "invalid request")
    if first.get("type") == "extra_forbidden":
        message = "unknown field (misspelt?)"
    members = {tuple(str(p) for p in error.get("loc", ())[:2]) for error in errors}
    more = f" (and {len(members) - 1} more)" if len(members) > 1 else ""
    return APIError(422, f"{where}: {message}{more}" if where else message + more, code="validation_error",
                    param=where or None)


def _location(loc: Any) -> str:
    """``("body", "input", "list[str]", 2)`` -> ``input[2]``: the request's own field names and indexes."""
    parts = [part for part in loc if part != "body"]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "[" in str(part) or str(part) in ("str", "int", "bool", "dict", "list"):
            continue  # pydantic's name of a union member, not a field
        else:
            text += ("." if text else "") + str(part)
    return text
