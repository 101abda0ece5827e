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


# ------------------------------------------------------------------ relevance on one scale

import numpy as np  # noqa: E402

from llama_index_mm_st.relevance import expected_calibration_error, sigmoid  # noqa: E402
from llama_index_mm_st.rerank.fusion import (  # noqa: E402
    SCORE_SCALES,
    RerankCalibration,
    fit_rerank_calibration,
    order_by_relevance,
    score_scale,
    to_relevance,
)


@pytest.mark.parametrize("scale", SCORE_SCALES)
def test_every_scale_maps_into_the_unit_interval_monotonically(scale: str) -> None:
    raw = {"probability": np.linspace(-0.1, 1.1, 50), "logit": np.linspace(-30, 30, 50),
           "signed": np.linspace(-1.2, 1.2, 50), "maxsim": np.linspace(-3, 25, 50)}[scale]
    relevance = to_relevance(scale, raw, query_tokens=20)  # type: ignore[arg-type]
    assert np.all((relevance >= 0) & (relevance <= 1))
    assert np.all(np.diff(relevance) >= 0) and relevance[-1] > relevance[0]


def test_each_scale_means_what_it_says() -> None:
    assert to_relevance("logit", [0.0, 2.0]) == pytest.approx([0.5, float(sigmoid(2.0))])
    assert to_relevance("probability", [0.3]) == pytest.approx([0.3])
    assert to_relevance("signed", [0.0]) == pytest.approx([0.5])
    assert to_relevance("maxsim", [12.0], query_tokens=16) == pytest.approx([0.75])
    with pytest.raises(ValueError, match="token count"):
        to_relevance("maxsim", [1.0])


def test_a_scorer_without_a_declared_scale_is_read_as_logits() -> None:
    class Plain:
        pass

    from llama_index_mm_st.rerank.scorers.base import ScorerAbilities

    class Declared:
        abilities = ScorerAbilities(score_scale="probability")

    assert score_scale(Plain()) == "logit" and score_scale(Declared()) == "probability"


def test_unscored_positions_stay_in_place_or_merge_by_score() -> None:
    relevance = {0: 0.2, 2: 0.9, 3: 0.5}
    kept = {1: 0.7}
    assert order_by_relevance(relevance, kept, merge=False) == [2, 1, 3, 0]
    assert order_by_relevance(relevance, kept, merge=True) == [2, 1, 3, 0][:1] + [1, 3, 0]
    assert order_by_relevance({0: 0.2}, {1: 0.7}, merge=True) == [1, 0]
    assert order_by_relevance({0: 0.2}, {1: 0.7}, merge=False) == [0, 1]


def test_calibration_fits_each_scorer_and_modality_on_labels() -> None:
    """A scorer too sure of its images (the Qwen3-VL pattern: scales differ by modality) is calibrated
    per document modality; groups with too few labels keep their relevance."""
    rng = np.random.default_rng(0)
    evidence = rng.normal(size=4000)
    labels = rng.random(4000) < sigmoid(evidence)
    samples = [("vlm", "text", float(sigmoid(e)), bool(y)) for e, y in zip(evidence[:2000], labels[:2000])]
    samples += [("vlm", "image", float(sigmoid(0.3 * e - 0.5)), bool(y)) for e, y in zip(evidence[2000:], labels[2000:])]
    samples += [("blip", "image", 0.9, True)] * 5
    calibration = fit_rerank_calibration(samples)
    assert set(calibration.maps) == {"vlm"} and set(calibration.maps["vlm"]) == {"text", "image"}
    images = np.array([s[2] for s in samples if s[1] == "image" and s[0] == "vlm"])
    image_labels = [s[3] for s in samples if s[1] == "image" and s[0] == "vlm"]
    assert expected_calibration_error(images, image_labels) > 0.1
    assert expected_calibration_error(calibration.apply("vlm", "image", images), image_labels) < 0.05
    assert calibration.apply("blip", "image", np.array([0.9])) == pytest.approx([0.9])
    assert RerankCalibration.from_dict(calibration.to_dict()) == calibration
