"""Pure ordering functions: score sort, reciprocal rank fusion, kept positions."""

from __future__ import annotations

import pytest

from llama_index_mm_st.rerank.fusion import keep_in_place, rank_by_score, reciprocal_rank_fusion


def test_rank_by_score_is_best_first_and_ties_keep_retrieval_order() -> None:
    assert rank_by_score({3: 0.5, 0: 0.9, 5: 0.5, 2: -1.0}) == [0, 3, 5, 2]


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([[4, 1, 7], [1, 9]], k=10)
    assert fused[1] == pytest.approx(1 / 12 + 1 / 11)
    assert fused[4] == pytest.approx(1 / 11)
    assert fused[9] == pytest.approx(1 / 12)
    assert fused[7] == pytest.approx(1 / 13)
    assert rank_by_score(fused) == [1, 4, 9, 7]


def test_rrf_of_disjoint_rankings_interleaves_them() -> None:
    fused = reciprocal_rank_fusion([[2, 0, 1], [5, 3]], k=60)
    assert rank_by_score(fused) == [2, 5, 0, 3, 1]


def test_rrf_rejects_negative_k() -> None:
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([[0]], k=-1)


@pytest.mark.parametrize(
    ("ordered", "kept", "expected"),
    [
        ([5, 2, 0], [1, 3], [5, 1, 2, 3, 0]),
        ([4, 2], [0], [0, 4, 2]),
        ([1], [7, 9], [1, 7, 9]),  # kept positions beyond the end go last, in order
        ([], [2, 0], [0, 2]),
        ([3, 1], [], [3, 1]),
    ],
)
def test_keep_in_place(ordered: list[int], kept: list[int], expected: list[int]) -> None:
    assert keep_in_place(ordered, kept) == expected
