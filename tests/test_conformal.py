from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import softmax

from helpers.evaluate import conformal

ALPHA = 0.1


def exchangeable(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a deliberately miscalibrated model's world: coverage must not depend on calibration."""
    z = rng.normal(0.0, 1.5, size=(n, k))
    y = (rng.random(n)[:, None] > np.cumsum(softmax(z, axis=1), axis=1)).sum(axis=1)
    return y, softmax(2.0 * z, axis=1)


def test_quantile_has_the_finite_sample_correction():
    scores = np.arange(9, 0, -1, dtype=float)  # 1..9, unsorted
    assert conformal.conformal_quantile(scores, 0.2) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal.conformal_quantile(scores, 0.5) == 5.0  # ceil(10 * 0.5) = 5th
    assert conformal.conformal_quantile(scores, 0.05) == math.inf  # ceil(10 * 0.95) = 10 > 9
    with pytest.raises(ValueError):
        conformal.conformal_quantile(scores, 1.0)


def test_scores_by_hand():
    p = np.array([[0.2, 0.5, 0.3]])
    np.testing.assert_allclose(conformal.lac_scores(p), [[0.8, 0.5, 0.7]])
    np.testing.assert_allclose(conformal.aps_scores(p), [[1.0, 0.5, 0.8]])  # mass at or above each label
    np.testing.assert_allclose(conformal.aps_scores(p, 1.0), [[0.8, 0.0, 0.5]])  # mass above each label
    np.testing.assert_allclose(conformal.aps_scores(p, np.array([0.5])), [[0.9, 0.25, 0.65]])


def test_sets_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    lac = conformal.prediction_sets(p, 0.75, "lac")  # keep labels with p >= .25
    np.testing.assert_array_equal(lac, [[True, False, False], [True, True, True]])
    aps = conformal.prediction_sets(p, 0.5, "aps", randomized=False)  # keep while mass above <= .5
    np.testing.assert_array_equal(aps, [[True, False, False], [True, True, False]])


def test_set_metrics_by_hand():
    sets = np.array([[True, False], [True, True], [False, False]])
    metrics = conformal.set_metrics(np.array([0, 1, 0]), sets)
    assert metrics.coverage == pytest.approx(2 / 3)
    assert metrics.set_size == pytest.approx(1.0)
    assert metrics.singleton_share == pytest.approx(1 / 3)
    assert metrics.empty_share == pytest.approx(1 / 3)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("method,randomized", [("lac", True), ("aps", True), ("aps", False)])
def test_coverage_holds_over_many_random_splits(method, randomized, k):
    # a small calibration split, where the (n + 1) correction matters: without it coverage is ~0.86
    rng = np.random.default_rng(k)
    n_cal, coverages = 20, []
    for split in range(500):
        y, p = exchangeable(n_cal + 100, k, rng)
        outcome = conformal.split_conformal(y[:n_cal], p[:n_cal], y[n_cal:], p[n_cal:], ALPHA, method,
                                            randomized, seed=split)
        coverages.append(outcome.metrics.coverage)
    mean = np.mean(coverages)
    assert mean >= 1 - ALPHA - 0.01  # the guarantee, with the Monte-Carlo error of 500 splits (sd ~0.003)
    if randomized:  # exact, not conservative: at most 1 - alpha + 1 / (n + 1)
        assert mean <= 1 - ALPHA + 1 / (n_cal + 1) + 0.01


def test_aps_sets_are_larger_than_lac_sets_on_average():
    rng = np.random.default_rng(7)
    lac, aps = [], []
    for split in range(100):
        y, p = exchangeable(500, 4, rng)
        lac.append(conformal.split_conformal(y[:200], p[:200], y[200:], p[200:], ALPHA, "lac").metrics.set_size)
        aps.append(conformal.split_conformal(y[:200], p[:200], y[200:], p[200:], ALPHA, "aps",
                                             seed=split).metrics.set_size)
    assert np.mean(aps) > np.mean(lac)


@pytest.mark.parametrize("method", ["lac", "aps"])
def test_sets_are_nested_in_alpha(method):
    y, p = exchangeable(600, 4, np.random.default_rng(3))
    loose = conformal.split_conformal(y[:300], p[:300], y[300:], p[300:], 0.05, method).sets
    tight = conformal.split_conformal(y[:300], p[:300], y[300:], p[300:], 0.3, method).sets
    assert np.all(loose | ~tight)  # every label in a 70 % set is in the 95 % set
    assert loose.sum() > tight.sum()


def test_deterministic_aps_sets_always_hold_the_top_label():
    y, p = exchangeable(400, 3, np.random.default_rng(4))
    outcome = conformal.split_conformal(y[:200], p[:200], y[200:], p[200:], 0.3, "aps", randomized=False)
    assert outcome.sets[np.arange(200), p[200:].argmax(axis=1)].all()
    assert outcome.metrics.empty_share == 0.0


def test_too_few_calibration_examples_give_full_sets():
    y, p = exchangeable(25, 3, np.random.default_rng(5))
    outcome = conformal.split_conformal(y[:5], p[:5], y[5:], p[5:], ALPHA, "lac")
    assert outcome.qhat == math.inf
    assert outcome.metrics.coverage == 1.0 and outcome.metrics.set_size == 3.0
