"""``multipart/form-data`` bodies (file uploads) read with the standard library's MIME parser.

The server's extra stays as it is (FastAPI's own form parsing needs ``python-multipart``); the body is
already bounded by the gate (``Limits.max_body_bytes``) before it gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Optional

from .errors import APIError


@dataclass(frozen=True)
class FormPart:
    """One part of a form: its field name, the file name it was sent with (None for a plain field) and its bytes."""

    field: str
    filename: Optional[str]
    data: bytes
    content_type: Optional[str]

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, f"form field {self.field!r} is not UTF-8 text", code="invalid_request",
                           param=self.field) from None


def parse_form(content_type: str, body: bytes) -> list[FormPart]:
    """The parts of a ``multipart/form-data`` body, in order; a 400 when it is not one."""
    if "boundary=" not in content_type:
        raise APIError(400, "a multipart body needs a boundary in its Content-Type", code="invalid_request")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    if not message.is_multipart():
        raise APIError(400, "the body is not multipart/form-data", code="invalid_request")
    parts = []
    for part in message.iter_parts():
        field = _param(part, "name")
        if field is None:
            raise APIError(400, "a form part has no name (Content-Disposition: form-data; name=...)",
                           code="invalid_request")
        data = part.get_payload(decode=True)
        parts.append(FormPart(field, _param(part, "filename"), data if isinstance(data, bytes) else b"",
                              part.get_content_type() if part.get("content-type") else None))
    return parts


def _param(part: Message, name: str) -> Optional[str]:
    value = part.get_param(name, header="content-disposition")
    if value is None:
        return None
    return str(value[2] if isinstance(value, tuple) else value)  # RFC 2231 form: (charset, language, value)
