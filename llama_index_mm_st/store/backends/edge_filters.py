"""A ``qdrant_client`` filter in Qdrant Edge's own types: one table entry per condition and match type.

The store builds every filter as a ``qdrant_client.models.Filter`` (``store/filters.py`` from
LlamaIndex's ``MetadataFilters``, ``plan.py`` for ids and modalities); the Edge adapter translates it
here, once per query.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Optional

import qdrant_edge as q
from qdrant_client import models

from llama_index_mm_st.errors import UnsupportedFilterError


def _iso(moment: Any) -> Optional[str]:
    if moment is None:
        return None
    if isinstance(moment, _dt.datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.isoformat()


def _match_value(m: models.MatchValue) -> Any:
    if isinstance(m.value, bool):
        # qdrant-edge-py 0.9 passes True/False on as 1/0, which never matches a boolean payload.
        raise UnsupportedFilterError(f"boolean match ({m.value}) is not supported by the Edge backend")
    return q.MatchValue(m.value)


_MATCHES: dict[type, Callable[[Any], Any]] = {
    models.MatchValue: _match_value,
    models.MatchAny: lambda m: q.MatchAny(list(m.any)),
    models.MatchExcept: lambda m: q.MatchExcept(list(m.except_)),
    models.MatchText: lambda m: q.MatchText(m.text),
    models.MatchTextAny: lambda m: q.MatchTextAny(m.text_any),
    models.MatchPhrase: lambda m: q.MatchPhrase(m.phrase),
    models.MatchPrefix: lambda m: q.MatchPrefix(m.prefix),
    models.MatchSubstring: lambda m: q.MatchSubstring(m.substring),
}

_RANGES: dict[type, Callable[[Any], Any]] = {
    models.Range: lambda r: q.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt),
    models.DatetimeRange: lambda r: q.RangeDateTime(gte=_iso(r.gte), gt=_iso(r.gt), lte=_iso(r.lte), lt=_iso(r.lt)),
}


def _field(c: models.FieldCondition) -> Any:
    values_count = None
    if c.values_count is not None:
        v = c.values_count
        values_count = q.ValuesCount(lt=v.lt, gt=v.gt, lte=v.lte, gte=v.gte)
    return q.FieldCondition(
        c.key,
        match=_MATCHES[type(c.match)](c.match) if c.match is not None else None,
        range=_RANGES[type(c.range)](c.range) if c.range is not None else None,
        values_count=values_count,
        is_empty=c.is_empty,
        is_null=c.is_null,
    )


_CONDITIONS: dict[type, Callable[[Any], Any]] = {
    models.FieldCondition: _field,
    models.IsEmptyCondition: lambda c: q.IsEmptyCondition(c.is_empty.key),
    models.IsNullCondition: lambda c: q.IsNullCondition(c.is_null.key),
    models.HasIdCondition: lambda c: q.HasIdCondition({str(i) for i in c.has_id}),
    models.HasVectorCondition: lambda c: q.HasVectorCondition(c.has_vector),
    models.NestedCondition: lambda c: q.NestedCondition(c.nested.key, edge_filter(c.nested.filter)),
    models.Filter: lambda c: edge_filter(c),
}


def _conditions(part: Any) -> Optional[list[Any]]:
    if part is None:
        return None
    items = part if isinstance(part, list) else [part]
    try:
        return [_CONDITIONS[type(c)](c) for c in items]
    except KeyError as err:
        raise ValueError(f"the Edge backend cannot translate filter condition {err.args[0]}") from None


def to_edge_filter(flt: Optional[models.Filter]) -> Optional[q.Filter]:
    """Translate a ``qdrant_client`` filter, one table entry per condition and match type; None stays None."""
    return None if flt is None else edge_filter(flt)


def edge_filter(flt: models.Filter) -> q.Filter:
    """``to_edge_filter`` of a filter that is there."""
    min_should = None
    if flt.min_should is not None:
        min_should = q.MinShould(_conditions(flt.min_should.conditions) or [], flt.min_should.min_count)
    return q.Filter(
        must=_conditions(flt.must),
        should=_conditions(flt.should),
        must_not=_conditions(flt.must_not),
        min_should=min_should,
    )
