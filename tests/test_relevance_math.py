"""The shared relevance math: logistic maps, Platt fitting, calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from llama_index_mm_st.relevance import (
    LogisticMap,
    expected_calibration_error,
    fit_logistic,
    logit,
    reliability,
    sigmoid,
)


def test_sigmoid_and_logit_are_inverse_and_bounded() -> None:
    x = np.array([-1000.0, -3.0, 0.0, 2.5, 1000.0])
    p = sigmoid(x)
    assert np.all((p >= 0) & (p <= 1)) and p[2] == 0.5
    assert logit(p[1:4]) == pytest.approx(x[1:4])


def test_fit_logistic_recovers_a_known_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    truth = LogisticMap((1.5, -0.7), 0.3)
    y = rng.random(len(x)) < truth(x)
    fitted = fit_logistic(x, y, l2=1e-6)
    assert fitted.weights == pytest.approx(truth.weights, abs=0.08)
    assert fitted.bias == pytest.approx(truth.bias, abs=0.08)
    assert expected_calibration_error(fitted(x), y) < 0.02


def test_platt_scaling_calibrates_an_overconfident_score() -> None:
    rng = np.random.default_rng(1)
    evidence = rng.normal(size=5000)
    labels = rng.random(5000) < sigmoid(0.5 * evidence - 1.0)
    raw = sigmoid(3 * evidence)  # far too sure of itself
    assert expected_calibration_error(raw, labels) > 0.15
    fitted = fit_logistic(evidence, labels)
    assert expected_calibration_error(fitted(evidence), labels) < 0.03


def test_ece_is_the_weighted_gap_per_bin() -> None:
    relevance = [0.05, 0.05, 0.95, 0.95]
    labels = [False, True, True, True]
    # bin [0, 0.1): mean 0.05, observed 0.5 -> 0.45; bin [0.9, 1]: 0.95 vs 1.0 -> 0.05; weights 1/2 each
    assert expected_calibration_error(relevance, labels) == pytest.approx(0.25)
    assert [row[2] for row in reliability(relevance, labels)] == [2, 2]
    assert expected_calibration_error([1.0], [True]) == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="relevant and irrelevant"):
        fit_logistic([[0.0], [1.0]], [True, True])
    with pytest.raises(ValueError, match="as many labels"):
        fit_logistic([[0.0], [1.0]], [True])
    with pytest.raises(ValueError, match="at least one"):
        expected_calibration_error([], [])
    with pytest.raises(ValueError, match="weights"):
        LogisticMap.from_dict({"weights": "x", "bias": 0})


def test_a_map_round_trips_through_json_shapes() -> None:
    m = LogisticMap((0.9, 2.0), -1.25)
    assert LogisticMap.from_dict(m.to_dict()) == m
    assert m([[1.0, 0.5]])[0] == pytest.approx(float(sigmoid(0.9 + 1.0 - 1.25)))
