"""The small JSON records beside an embedded store's shard (its schema, its metadata), read so that a
damaged one is named: the file, what it held, and how to recover, as a damaged shard is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

from llama_index_mm_st.errors import UnfinishedStoreError

Value = TypeVar("Value")


def read_record(path: Path, what: str, build: Callable[[Any], Value] = lambda data: data) -> Value:
    """``build(json of path)``; a file that is not valid JSON (or not the record ``build`` expects)
    raises ``UnfinishedStoreError`` naming it, what it held and the two ways on."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise TypeError(f"a JSON object was expected, not {type(data).__name__}")
        return build(data)
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError, a missing field
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UnfinishedStoreError(
            f"the store's {what} record {path} is damaged ({reason}); put the file back from a copy of the store "
            f"(or a backup), or move the folder {path.parent} away and index again into a new store") from None
