from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from helpers.evaluate import calibration

# Two classes, four examples: confidences 0.85 (right), 0.85 (wrong), 0.65 (wrong), 0.65 (right).
Y2 = np.array([0, 1, 0, 1])
P2 = np.array([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65]])


def synthetic(n: int, k: int, seed: int, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True logits z, labels drawn from softmax(z), and the probabilities a model with logits
    sharpen * z reports (sharpen > 1: over-confident by temperature `sharpen`)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    true = softmax(z, axis=1)
    y = (rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1)
    return z, y, softmax(sharpen * z, axis=1)


def test_hand_computed_binary_metrics():
    # bins (10 equal-width): 0.8-0.9 holds conf .85 acc .5; 0.6-0.7 holds conf .65 acc .5
    assert calibration.ece(Y2, P2, n_bins=10) == pytest.approx(0.5 * 0.35 + 0.5 * 0.15)
    assert calibration.mce(Y2, P2, n_bins=10) == pytest.approx(0.35)
    # sum over classes of squared error, mean over examples
    assert calibration.brier(Y2, P2) == pytest.approx((0.045 + 1.445 + 0.845 + 0.245) / 4)
    assert calibration.nll(Y2, P2) == pytest.approx(-np.mean(np.log([0.85, 0.15, 0.35, 0.65])))


def test_reliability_table_by_hand():
    table = calibration.reliability(Y2, P2, n_bins=10)
    assert table["bin"].tolist() == [6, 8]
    assert table["confidence"].tolist() == pytest.approx([0.65, 0.85])
    assert table["accuracy"].tolist() == pytest.approx([0.5, 0.5])
    assert table["count"].tolist() == [2, 2]
    assert calibration.reliability_ece(table) == pytest.approx(calibration.ece(Y2, P2, n_bins=10))


def test_equal_mass_bins_split_where_equal_width_bins_do_not():
    # confidences .55 .6 .9 .95, right/wrong/right/right; two equal-width bins put all four in [.5, 1]
    # (conf .75 = acc .75), two equal-mass bins split them: |.5 - .575| and |1 - .925|
    y = np.array([0, 0, 0, 0])
    p = np.array([[0.55, 0.45], [0.4, 0.6], [0.9, 0.1], [0.95, 0.05]])
    assert calibration.ece(y, p, n_bins=2) == pytest.approx(0.0)
    assert calibration.ece(y, p, n_bins=2, strategy="equal_mass") == pytest.approx(0.075)
    assert calibration.reliability(y, p, 2, "equal_mass")["count"].tolist() == [2, 2]


def test_classwise_ece_by_hand():
    # two equal-width bins; class 0: (2 * .2 + .1) / 3, class 1: 1/6, class 2: (2 * .1 + .2) / 3
    y = np.array([0, 1, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert calibration.classwise_ece(y, p, n_bins=2) == pytest.approx((1 / 6 + 1 / 6 + 2 / 15) / 3)
    assert calibration.ece(y, p, n_bins=2) == pytest.approx(abs(2 / 3 - 2.2 / 3))


def test_perfectly_calibrated_probabilities_have_ece_near_zero():
    _, y, p = synthetic(20000, 3, seed=0)
    assert calibration.ece(y, p) < 0.015
    assert calibration.ece(y, p, strategy="equal_mass") < 0.015
    assert calibration.classwise_ece(y, p) < 0.015
    _, y, over = synthetic(20000, 3, seed=0, sharpen=2.0)
    assert calibration.ece(y, over) > 0.08


def test_temperature_scaling_recovers_a_known_temperature():
    _, y_val, p_val = synthetic(6000, 4, seed=1, sharpen=2.5)
    temperature = calibration.fit_temperature(y_val, p_val)
    assert temperature == pytest.approx(2.5, rel=0.08)
    _, y_test, p_test = synthetic(6000, 4, seed=2, sharpen=2.5)
    scaled = calibration.recalibrate(p_test, calibration.Recalibration("temperature", temperature, (0.0,) * 4))
    assert calibration.ece(y_test, scaled) < calibration.ece(y_test, p_test) / 3
    assert calibration.nll(y_test, scaled) < calibration.nll(y_test, p_test)
    np.testing.assert_array_equal(scaled.argmax(axis=1), p_test.argmax(axis=1))


def test_temperature_below_one_for_an_under_confident_model():
    _, y, p = synthetic(6000, 3, seed=3, sharpen=0.5)
    assert calibration.fit_temperature(y, p) == pytest.approx(0.5, rel=0.1)


def test_probabilities_stand_in_for_logits():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    fitted = calibration.Recalibration("bias_temperature", 2.0, (0.0, 1.0, -0.5))
    np.testing.assert_allclose(calibration.recalibrate(softmax(logits, axis=1), fitted),
                               softmax(logits / 2.0 + np.array([0.0, 1.0, -0.5]), axis=1))


def leaning(n: int, seed: int, sharpen: float, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model over-confident by `sharpen` that also adds `offset` to its logits: it leans to a class,
    as a short fine-tune does."""
    z, y, _ = synthetic(n, len(offset), seed)
    return y, softmax(sharpen * z + offset, axis=1)


def test_bias_temperature_recovers_a_known_lean_and_moves_the_decisions():
    offset = np.array([0.0, 3.0, 0.0])
    y_val, p_val = leaning(8000, 4, 2.0, offset)
    fitted = calibration.fit_recalibration(y_val, p_val, "bias_temperature")
    assert fitted.temperature == pytest.approx(2.0, rel=0.08)
    # log p / T + b = z + offset / T + b: the bias that undoes the lean is -offset / T
    np.testing.assert_allclose(fitted.bias, -offset / 2.0, atol=0.1)
    y_test, p_test = leaning(8000, 5, 2.0, offset)
    decided = calibration.recalibrate(p_test, fitted)
    assert (decided.argmax(axis=1) == y_test).mean() > (p_test.argmax(axis=1) == y_test).mean() + 0.05
    assert calibration.nll(y_test, decided) < calibration.nll(y_test, p_test)


def test_temperature_alone_keeps_the_decisions():
    y, p = leaning(3000, 6, 2.0, np.array([0.0, 1.5, 0.0]))
    fitted = calibration.fit_recalibration(y, p, "temperature")
    assert fitted.bias == (0.0, 0.0, 0.0)
    assert fitted.temperature == pytest.approx(calibration.fit_temperature(y, p))
    np.testing.assert_array_equal(calibration.recalibrate(p, fitted).argmax(axis=1), p.argmax(axis=1))


def test_separable_validation_keeps_the_fit_within_bounds():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8]])
    fitted = calibration.fit_recalibration(y, p, "bias_temperature")
    assert calibration.TEMPERATURE_BOUNDS[0] <= fitted.temperature <= calibration.TEMPERATURE_BOUNDS[1]
    assert all(abs(b) <= calibration.BIAS_BOUND for b in fitted.bias)
    np.testing.assert_array_equal(calibration.recalibrate(p, fitted).argmax(axis=1), y)


def test_unknown_recalibration_and_mismatched_classes_are_rejected():
    with pytest.raises(ValueError, match="recalibration must be one of"):
        calibration.fit_recalibration(Y2, P2, "platt")
    with pytest.raises(ValueError, match="3 class biases"):
        calibration.recalibrate(P2, calibration.Recalibration("bias_temperature", 1.0, (0.0, 0.0, 0.0)))


def test_inputs_that_are_not_probabilities_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        calibration.ece(np.array([0, 1]), np.array([[0.6, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="0..1"):
        calibration.brier(np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="k >= 2"):
        calibration.nll(np.array([0, 1]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="strategy"):
        calibration.ece(Y2, P2, strategy="quantile")
