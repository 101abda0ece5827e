"""How a store survives pickling: it pickles how to open its collection, and the copy opens it on
first use. A LlamaIndex ``VectorStoreIndex`` pickled with its store (a cache, a process pool, Ray)
then works after unpickling instead of failing on a missing engine handle.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, Optional

_DEFER_OPEN: contextvars.ContextVar[bool] = contextvars.ContextVar("mmst_defer_open", default=False)
"""Set while an unpickled store is built: it opens its collection on first use, not at once."""


@dataclass(frozen=True)
class ReopenArgs:
    """What opens the same collection again: where it is and the store's own settings."""

    collection_name: str
    path: Optional[str]
    url: Optional[str]
    api_key: Optional[str] = field(repr=False)
    client_kwargs: dict[str, Any]
    fields: dict[str, Any]


def reopened(cls: type, args: ReopenArgs) -> Any:
    """Unpickling: the store, built from its settings, to open its collection when first used."""
    token = _DEFER_OPEN.set(True)
    try:
        return cls(args.collection_name, path=args.path, url=args.url, api_key=args.api_key,
                   client_kwargs=args.client_kwargs or None,
                   **{k: v for k, v in args.fields.items() if k not in ("collection_name", "path", "url")})
    finally:
        _DEFER_OPEN.reset(token)
