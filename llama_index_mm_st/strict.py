"""Refuse misspelt keyword arguments on the package's pydantic components.

LlamaIndex's base classes accept and drop unknown keywords, so ``ImageReader(recursiv=True)`` would
silently walk recursively by the default. Components that take their settings as pydantic fields mix
this in; components with a hand-written ``__init__`` call ``errors.refuse_unknown`` themselves.
"""

from __future__ import annotations

from typing import Any

from .errors import refuse_unknown


class RefusesUnknownFields:
    """Mixin for a pydantic model: constructing it with a keyword that is not a field is a ``TypeError``
    naming the keyword, the closest field and every field."""

    def __init__(self, **data: Any) -> None:
        refuse_unknown(type(self).__name__, data, type(self).model_fields)  # type: ignore[attr-defined]
        super().__init__(**data)
