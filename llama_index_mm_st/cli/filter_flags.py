"""``mmst search --filter``: metadata filters on the command line, with LlamaIndex's operators.

    --filter file_type=image/png          equal (also ==)
    --filter 'page>=2'  --filter 'width<800'  --filter 'page!=1'
    --filter file_name:in=a.png,b.png     a word operator after a colon: in, nin, any, all, contains,
                                          text_match, text_match_insensitive (lists are comma-separated)
    --filter caption:is_empty             no value

Repeat ``--filter`` to require all of them. A value is a number when it reads as one; quote it in
double quotes to keep it text (``--filter 'year="2024"'``). The flags become ``args.filters``, a LlamaIndex
``MetadataFilters`` (the same value ``/v1/search`` takes as JSON), which is ``SearchRequest.filters``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Optional, Sequence

from .models import CLIError

SYMBOLS = {"=": "==", "==": "==", "!=": "!=", ">=": ">=", "<=": "<=", ">": ">", "<": "<"}
LIST_OPERATORS = ("in", "nin", "any", "all")
WORD_OPERATORS = (*LIST_OPERATORS, "contains", "text_match", "text_match_insensitive", "is_empty")
_SYMBOLIC = re.compile(r"^(?P<key>[^=!<>:]+?)\s*(?P<op>==|!=|>=|<=|=|>|<)\s*(?P<value>.*)$", re.S)
_WORDED = re.compile(r"^(?P<key>[^=!<>:]+?):(?P<op>[a-z_]+)(?:=(?P<value>.*))?$", re.S)
SYNTAX = ("KEY=VALUE, KEY!=VALUE, KEY>=N (also >, <, <=), or KEY:OP=VALUE with OP one of "
          + ", ".join(WORD_OPERATORS[:-1]) + " (KEY:is_empty takes no value)")


def add_filter_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", dest="filters", action=FilterAction, default=None, metavar="KEY=VALUE",
                        help="only results whose metadata match (repeat: all must match); operators: " + SYNTAX)


class FilterAction(argparse.Action):
    """Each ``--filter`` adds one filter to ``args.filters`` (a ``MetadataFilters``, all must hold); a value
    that does not parse is the parser's usage error, naming it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        try:
            added = metadata_filters([str(values)])
        except CLIError as exc:
            raise argparse.ArgumentError(self, str(exc).removeprefix(f"--filter {values}: ")) from None
        current = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, added if current is None else
                type(added)(filters=[*current.filters, *added.filters]))


def metadata_filters(specs: Optional[Sequence[str]]) -> Any:
    """``--filter`` values as LlamaIndex ``MetadataFilters`` (all must hold), or None when none were given."""
    if not specs:
        return None
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    filters = []
    for spec in specs:
        key, operator, value = parse_filter(spec)
        filters.append(MetadataFilter(key=key, value=value, operator=FilterOperator(operator)))
    return MetadataFilters(filters=filters)


def parse_filter(spec: str) -> tuple[str, str, Any]:
    """One ``--filter`` value as (key, LlamaIndex operator, value); a CLIError naming it otherwise."""
    worded = _WORDED.match(spec.strip())
    if worded and worded.group("op") in WORD_OPERATORS:
        key, operator, raw = worded.group("key").strip(), worded.group("op"), worded.group("value")
        if operator == "is_empty":
            if raw is not None:
                raise CLIError(f"--filter {spec}: {key}:is_empty takes no value")
            return key, operator, None
        if raw is None or raw == "":
            raise CLIError(f"--filter {spec}: give a value after '=' ({key}:{operator}=VALUE)")
        if operator in LIST_OPERATORS:
            return key, operator, [_value(part.strip()) for part in raw.split(",")]
        return key, operator, raw if operator.startswith("text_match") else _value(raw)
    if worded:
        raise CLIError(f"--filter {spec}: unknown operator {worded.group('op')!r}; use {SYNTAX}")
    symbolic = _SYMBOLIC.match(spec.strip())
    if symbolic is None or not symbolic.group("key").strip() or symbolic.group("value") == "":
        raise CLIError(f"--filter {spec}: expected {SYNTAX}")
    return symbolic.group("key").strip(), SYMBOLS[symbolic.group("op")], _value(symbolic.group("value").strip())


def _value(raw: str) -> Any:
    """A number when the text reads as one, else the text ("..." keeps it text)."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw
