"""The three kinds of evidence and their JSON shapes (what the CLI prints and the server sends)."""

from __future__ import annotations

import json

import pytest

from llama_index_mm_st.evidence import Passage, Region, Span, best_first, evidence_from_dict


def test_json_shapes_are_the_documented_ones():
    assert Region((0.12, 0.4, 0.55, 0.62), 0.91, page=3).to_dict() == {
        "kind": "region", "box": [0.12, 0.4, 0.55, 0.62], "page": 3, "score": 0.91}
    assert Region((0, 0, 1, 1), 0.5).to_dict()["page"] is None
    assert Span(64.0, 72.5, 0.8).to_dict() == {"kind": "span", "start_s": 64.0, "end_s": 72.5, "score": 0.8}
    assert Passage(10, 42, 0.7).to_dict() == {"kind": "passage", "start": 10, "end": 42, "score": 0.7}


@pytest.mark.parametrize("item", [Region((0.1, 0.2, 0.3, 0.4), 0.25, page=2), Span(1.5, 3.0, -0.1), Passage(0, 5, 1.0)])
def test_rows_read_back_as_the_same_evidence(item):
    assert evidence_from_dict(json.loads(json.dumps(item.to_dict()))) == item


@pytest.mark.parametrize("make, message", [
    (lambda: Region((0.5, 0.1, 0.2, 0.3), 1.0), "x0 <= x1"),
    (lambda: Region((0.1, 0.2, 0.3), 1.0), "x0, y0, x1, y1"),
    (lambda: Region((0.1, 0.2, 0.3, float("nan")), 1.0), "finite"),
    (lambda: Span(3.0, 2.0, 0.1), "start_s <= end_s"),
    (lambda: Span(-1.0, 2.0, 0.1), "start_s <= end_s"),
    (lambda: Passage(5, 2, 0.1), "start <= end"),
    (lambda: Passage(1.5, 2, 0.1), "integers"),
    (lambda: Span(0.0, 1.0, float("inf")), "finite"),
])
def test_bad_evidence_is_refused_with_the_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_boxes_are_held_to_the_unit_square():
    assert Region((-0.01, 0.0, 1.02, 0.5), 1.0).box == (0.0, 0.0, 1.0, 0.5)


def test_unknown_or_incomplete_rows_are_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        evidence_from_dict({"kind": "box"})
    with pytest.raises(ValueError, match="missing"):
        evidence_from_dict({"kind": "span", "start_s": 1.0})


def test_best_first_orders_each_kind_by_score():
    items = [Passage(0, 3, 0.2), Region((0, 0, 1, 1), 0.1), Span(0, 1, 0.3), Region((0, 0, 0.5, 0.5), 0.9),
             Passage(4, 9, 0.8)]
    assert best_first(items) == [items[3], items[1], items[2], items[4], items[0]]


def test_pixels_of_a_region():
    assert Region((0.25, 0.5, 0.75, 1.0), 1.0).pixels(200, 100) == (50, 50, 150, 100)
    assert Region((0.3, 0.3, 0.3, 0.3), 1.0).pixels(10, 10) == (3, 3, 4, 4)  # never empty
