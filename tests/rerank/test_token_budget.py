"""Length-sorted batches under a padded-token budget."""

from __future__ import annotations

import random

import pytest

from llama_index_mm_st.rerank.token_budget import budget_batches


def test_batches_are_longest_first_and_cover_every_index_once() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 300) for _ in range(97)]
    batches = budget_batches(lengths, max_rows=16, max_tokens=1024)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(97))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1024


def test_budget_cuts_padding_against_fixed_batches() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(20, 220) for _ in range(48)]

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    real = sum(lengths)
    budget_waste = padded(budget_batches(lengths, 32, 2048)) - real
    fixed_waste = padded(budget_batches(lengths, 32, None)) - real
    assert budget_waste < 0.6 * fixed_waste


def test_a_row_longer_than_the_budget_gets_its_own_batch() -> None:
    assert budget_batches([5000, 10, 10], max_rows=8, max_tokens=100) == [[0], [1, 2]]


def test_rows_only_and_empty() -> None:
    assert budget_batches([3, 1, 2], max_rows=2, max_tokens=None) == [[0, 2], [1]]
    assert budget_batches([], max_rows=4, max_tokens=10) == []
    with pytest.raises(ValueError):
        budget_batches([1], max_rows=0, max_tokens=None)
