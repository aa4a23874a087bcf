from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import accuracy_score, f1_score

from helpers.evaluate.significance import (bootstrap_ci, macro_f1, mcnemar_exact, mcnemar_exact_p, pairwise_mcnemar,
                                           quality_cis, versus_majority)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Same value as sklearn's accuracy_score, without its per-call validation cost."""
    return float(np.mean(y_true == y_pred))


def paired(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors for two models with the given 2x2 agreement table."""
    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_known_table():
    a, b = paired(both=20, a_only=1, b_only=9, neither=5)
    a_only, b_only, p_value = mcnemar_exact(a, b)
    assert (a_only, b_only) == (1, 9)
    assert p_value == pytest.approx(0.021484375)
    assert p_value == pytest.approx(2 * binom.cdf(1, 10, 0.5))


def test_mcnemar_is_symmetric():
    a, b = paired(both=3, a_only=9, b_only=1, neither=0)
    assert mcnemar_exact(a, b) == (9, 1, pytest.approx(0.021484375))
    assert mcnemar_exact(b, a) == (1, 9, pytest.approx(0.021484375))


def test_versus_majority_counts_the_examples_only_one_side_gets_right():
    # Majority label 1; the model gets 9 of the 0s right and misses 1 of the 1s.
    y_true = np.array([0] * 10 + [1] * 20)
    y_pred = np.array([0] * 9 + [1] + [0] + [1] * 19)
    result = versus_majority(y_true, y_pred, majority_label=1)
    assert (result["model_only_correct"], result["majority_only_correct"]) == (9, 1)
    assert result["p_value"] == pytest.approx(2 * binom.cdf(1, 10, 0.5))
    assert versus_majority(y_true, np.ones(30, dtype=int), 1)["p_value"] == 1.0  # the majority itself


def test_mcnemar_from_summed_counts_is_the_test_of_the_joined_answers():
    # Two seeds' independent samples: their discordant counts summed give the joined samples' test.
    first, second = paired(both=20, a_only=1, b_only=9, neither=5), paired(both=4, a_only=2, b_only=6, neither=1)
    joined = mcnemar_exact(np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]))
    assert joined == (3, 15, pytest.approx(mcnemar_exact_p(1 + 2, 9 + 6)))
    assert mcnemar_exact_p(3, 15) == pytest.approx(2 * binom.cdf(3, 18, 0.5))
    assert mcnemar_exact_p(0, 0) == 1.0


def test_mcnemar_equal_discordance_is_one():
    a, b = paired(both=10, a_only=3, b_only=3, neither=4)
    assert mcnemar_exact(a, b) == (3, 3, 1.0)


def test_mcnemar_no_discordance_is_one():
    a, b = paired(both=10, a_only=0, b_only=0, neither=4)
    assert mcnemar_exact(a, b) == (0, 0, 1.0)


def test_mcnemar_length_mismatch():
    with pytest.raises(ValueError):
        mcnemar_exact([True, False], [True])


def test_pairwise_three_models():
    truth = np.ones(40, dtype=bool)
    rng = np.random.default_rng(1)
    correct = {
        "alpha": truth.copy(),
        "beta": rng.random(40) > 0.3,
        "gamma": rng.random(40) > 0.6,
    }
    table = pairwise_mcnemar(correct)
    assert list(table.columns) == [
        "model_a",
        "model_b",
        "a_only_correct",
        "b_only_correct",
        "p_value",
        "p_holm",
        "significant",
    ]
    assert list(zip(table["model_a"], table["model_b"])) == [("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma")]
    assert (table["p_holm"] >= table["p_value"]).all()
    assert (table["p_holm"] <= 1).all()
    assert table["significant"].tolist() == (table["p_holm"] < 0.05).tolist()
    for row in table.itertuples():
        assert (row.a_only_correct, row.b_only_correct, row.p_value) == mcnemar_exact(
            correct[row.model_a], correct[row.model_b]
        )


def test_pairwise_holm_by_hand():
    # a-b and b-c both have discordance 1 vs 9 (p = 0.021484375); a-c agree everywhere (p = 1).
    # Holm: sorted p = [p, p, 1] -> [3p, max(3p, 2p), 1] = [0.064453125, 0.064453125, 1].
    a, b = paired(both=0, a_only=1, b_only=9, neither=0)
    table = pairwise_mcnemar({"a": a, "b": b, "c": a.copy()}).set_index(["model_a", "model_b"])
    assert table.loc[("a", "b"), "p_holm"] == pytest.approx(0.064453125)
    assert table.loc[("b", "c"), "p_holm"] == pytest.approx(0.064453125)
    assert table.loc[("a", "c"), "p_value"] == 1.0
    assert table.loc[("a", "c"), "p_holm"] == 1.0
    assert not table["significant"].any()
    assert pairwise_mcnemar({"a": a, "b": b}, alpha=0.05)["significant"].tolist() == [True]


def test_pairwise_needs_two_models():
    table = pairwise_mcnemar({"only": np.array([True, False])})
    assert table.empty
    assert "p_holm" in table.columns
    assert pairwise_mcnemar({}).empty


def test_bootstrap_contains_point_and_is_deterministic():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, 1 - y_true)
    point = accuracy(y_true, y_pred)
    low, high = bootstrap_ci(y_true, y_pred, accuracy, n_resamples=500, seed=3)
    assert low <= point <= high
    assert low < high
    assert (low, high) == bootstrap_ci(y_true, y_pred, accuracy, n_resamples=500, seed=3)
    assert (low, high) != bootstrap_ci(y_true, y_pred, accuracy, n_resamples=500, seed=4)


def test_bootstrap_narrows_with_more_data():
    y_true = np.array([0, 1] * 25)
    y_pred = y_true.copy()
    y_pred[:10] = 1 - y_pred[:10]
    small = bootstrap_ci(y_true, y_pred, accuracy, n_resamples=500)
    large = bootstrap_ci(np.tile(y_true, 10), np.tile(y_pred, 10), accuracy, n_resamples=500)
    assert large[1] - large[0] < small[1] - small[0]


def test_bootstrap_wider_at_higher_confidence():
    y_true = np.array([0, 1] * 25)
    y_pred = np.roll(y_true, 1)
    y_pred[::3] = y_true[::3]
    ci_80 = bootstrap_ci(y_true, y_pred, accuracy, confidence=0.8)
    ci_99 = bootstrap_ci(y_true, y_pred, accuracy, confidence=0.99)
    assert ci_99[0] <= ci_80[0] and ci_80[1] <= ci_99[1]


def test_bootstrap_length_mismatch():
    with pytest.raises(ValueError):
        bootstrap_ci([0, 1], [0], accuracy)


def test_quality_cis_shape_and_perfect_predictions():
    y = np.array([0, 1, 2] * 10)
    cis = quality_cis(y, y, labels=[0, 1, 2], n_resamples=100)
    assert set(cis) == {"accuracy_ci95", "f1_ci95"}
    assert cis["accuracy_ci95"] == [1.0, 1.0]
    assert cis["f1_ci95"] == [1.0, 1.0]


def test_quality_cis_brackets_point_estimates():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 3, 150)
    y_pred = np.where(rng.random(150) < 0.7, y_true, rng.integers(0, 3, 150))
    cis = quality_cis(y_true, y_pred, labels=[0, 1, 2], n_resamples=100)
    accuracy = accuracy_score(y_true, y_pred)
    assert cis["accuracy_ci95"][0] <= accuracy <= cis["accuracy_ci95"][1]
    assert all(isinstance(value, float) for value in cis["f1_ci95"])


def test_vectorized_macro_f1_scores_every_resample_as_sklearn_does():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 40)
    y_pred = np.where(rng.random(40) < 0.6, y_true, rng.integers(0, 3, 40))
    y_pred[y_pred == 2] = 1  # a class never predicted still counts in the macro average
    idx = rng.integers(0, 40, size=(30, 40))
    expected = [f1_score(y_true[i], y_pred[i], labels=[0, 1, 2, 3], average="macro", zero_division=0) for i in idx]
    assert np.allclose(macro_f1([0, 1, 2, 3])(y_true[idx], y_pred[idx]), expected)
