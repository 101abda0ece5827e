"""MetadataFilters -> Qdrant filter: the request built for each operator, and clear refusals."""

from __future__ import annotations

import datetime as dt

import pytest
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from qdrant_client import models

from llama_index_mm_st.store import UnsupportedFilterError
from llama_index_mm_st.store.backends.edge_filters import to_edge_filter
from llama_index_mm_st.store.filters import all_of, to_qdrant_filter


def one(key: str, value, op: FilterOperator) -> models.Filter:
    return to_qdrant_filter(MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)]))


def test_string_equality_is_a_match_and_numbers_are_ranges() -> None:
    assert one("k", "x", FilterOperator.EQ).must == [models.FieldCondition(key="k", match=models.MatchValue(value="x"))]
    assert one("k", 3, FilterOperator.EQ).must == [models.FieldCondition(key="k", range=models.Range(gte=3, lte=3))]
    assert one("k", 2.5, FilterOperator.GT).must == [models.FieldCondition(key="k", range=models.Range(gt=2.5))]


def test_negations_use_must_not_so_missing_keys_match() -> None:
    ne = one("k", "x", FilterOperator.NE).must[0]
    assert ne.must_not == [models.FieldCondition(key="k", match=models.MatchValue(value="x"))]
    nin = one("k", ["a", "b"], FilterOperator.NIN).must[0]
    assert nin.must_not == [models.FieldCondition(key="k", match=models.MatchAny(any=["a", "b"]))]


def test_datetime_strings_become_datetime_ranges() -> None:
    cond = one("when", "2024-05-01T10:00:00+00:00", FilterOperator.GTE).must[0]
    assert cond.range == models.DatetimeRange(gte=dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc))


@pytest.mark.parametrize("op", list(FilterOperator))
def test_every_operator_translates_or_is_refused_by_name(op: FilterOperator) -> None:
    value = {
        FilterOperator.IN: ["a"],
        FilterOperator.NIN: ["a"],
        FilterOperator.ANY: ["a"],
        FilterOperator.ALL: ["a", "b"],
    }.get(op, "a" if op not in (FilterOperator.GT, FilterOperator.LT, FilterOperator.GTE, FilterOperator.LTE) else 1)
    if op == FilterOperator.TEXT_MATCH_INSENSITIVE:
        with pytest.raises(UnsupportedFilterError, match="case-insensitive"):
            one("k", value, op)
        return
    flt = one("k", value, op)
    assert flt.must and len(flt.must) == 1
    assert to_edge_filter(flt) is not None  # the Edge backend can express the same request


def test_bad_values_name_the_filter() -> None:
    with pytest.raises(UnsupportedFilterError, match="'price' > 'cheap'"):
        one("price", "cheap", FilterOperator.GT)
    with pytest.raises(UnsupportedFilterError, match="'tags' in"):
        to_qdrant_filter(MetadataFilters(filters=[MetadataFilter(key="tags", value=[], operator=FilterOperator.IN)]))


def test_conditions_and_nesting() -> None:
    a = MetadataFilter(key="a", value="1")
    b = MetadataFilter(key="b", value="2")
    nested = MetadataFilters(
        filters=[a, MetadataFilters(filters=[a, b], condition=FilterCondition.OR)], condition=FilterCondition.NOT
    )
    flt = to_qdrant_filter(nested)
    match_a = models.FieldCondition(key="a", match=models.MatchValue(value="1"))
    match_b = models.FieldCondition(key="b", match=models.MatchValue(value="2"))
    assert flt == models.Filter(must_not=[match_a, models.Filter(should=[match_a, match_b])])


def test_all_of_merges_sub_filters_flat_and_keeps_a_second_or_group_nested() -> None:
    a = models.FieldCondition(key="a", match=models.MatchValue(value="x"))
    b = models.FieldCondition(key="b", match=models.MatchValue(value="y"))
    c = models.FieldCondition(key="c", match=models.MatchValue(value="z"))
    merged = all_of([models.Filter(must=[a]), models.Filter(must_not=[b]), c])
    assert merged == models.Filter(must=[a, c], must_not=[b])
    first_or, second_or = models.Filter(should=[a, b]), models.Filter(should=[b, c])
    both = all_of([first_or, second_or])
    assert both is not None and both.should == [a, b]  # one OR group merges
    assert both.must == [second_or]  # the second stays nested: (a or b) and (b or c)
    assert all_of([None, None]) is None
