"""``help()`` for the pydantic components: a parameter section built from the fields' descriptions.

Pydantic keeps each field's ``description`` in ``model_fields``, where ``help()`` never looks, and a
class without its own ``__init__`` shows pydantic's generic "Create a new model by parsing..." text.
``@document_parameters(...)`` writes one "Parameters" section (name, type, default, description)
into the class docstring and into ``__init__.__doc__``; the keyword arguments describe constructor
arguments that are not fields (``api_key=``, ``client=``...). The descriptions stay next to the
fields they describe, so the help can't drift from the code.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, Optional, TypeVar

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

C = TypeVar("C", bound=type)

INHERITED = {
    "callback_manager": "LlamaIndex callback manager for tracing events.",
    "stores_text": "LlamaIndex flag: the store keeps node text, so no separate docstore is needed.",
    "is_embedding_query": "LlamaIndex flag: queries carry an embedding.",
}
"""Fields that LlamaIndex's base classes declare without a description."""

_INDENT = "    "


def _type_name(annotation: Any) -> str:
    if annotation is None:
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            return repr(field.default_factory())  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    if field.default is PydanticUndefined:
        return "required"
    return repr(field.default)


def parameter_section(cls: type, extra: Optional[Mapping[str, str]] = None) -> str:
    """``Parameters`` in numpydoc form: constructor-only arguments first (in signature order), then fields."""
    fields: dict[str, FieldInfo] = getattr(cls, "model_fields", {})
    lines = ["Parameters", "----------"]
    for name, description in (extra or {}).items():
        lines += [name, _INDENT + description]
    for name, field in fields.items():
        if field.exclude:
            continue
        description = field.description or INHERITED.get(name, "")
        lines.append(f"{name} : {_type_name(field.annotation)}, default {_default(field)}")
        if description:
            lines.append(_INDENT + description)
    return "\n".join(lines)


def document_parameters(**extra: str) -> Callable[[C], C]:
    """Class decorator: append the parameter section to the class docstring and ``__init__.__doc__``.

    ``extra`` describes constructor arguments that are not fields, e.g. ``api_key="..."``.
    """

    def decorate(cls: C) -> C:
        section = parameter_section(cls, extra)
        summary = inspect.cleandoc(cls.__doc__ or "")
        cls.__doc__ = f"{summary}\n\n{section}\n"
        if "__init__" not in cls.__dict__:  # never rewrite pydantic's own BaseModel.__init__ docstring
            inherited = cls.__init__

            @functools.wraps(inherited)
            def __init__(self: Any, /, **data: Any) -> None:
                inherited(self, **data)

            __init__.__signature__ = inspect.signature(cls)  # type: ignore[attr-defined]
            cls.__init__ = __init__  # type: ignore[misc]
        cls.__init__.__doc__ = f"Create a {cls.__name__}.\n\n{section}\n"
        return cls

    return decorate
