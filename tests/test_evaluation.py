from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy.special import softmax

from helpers import config
from helpers.config import EvaluationConfig
from helpers.evaluate import calibration
from helpers.evaluate.uncertainty import calibration_metrics, uncertainty_report

REPORT_KEYS = {
    "ece_bins", "ece", "ece_equal_mass", "ece_classwise", "mce", "brier", "nll", "recalibration", "temperature",
    "class_bias", "ece_recalibrated", "nll_recalibrated", "brier_recalibrated", "aurc",
    "selective_target_accuracy", "selective_target_reached", "selective_threshold", "selective_coverage",
    "selective_accuracy", "conformal_alpha", "conformal_calibration_examples", "conformal_qhat",
    "conformal_coverage", "conformal_set_size", "conformal_singleton_share", "conformal_empty_share",
    "conformal_aps_qhat", "conformal_aps_coverage", "conformal_aps_set_size", "conformal_aps_singleton_share",
    "conformal_aps_empty_share", "conformal_aps_randomized", "abstain_cost", "expected_cost",
    "expected_cost_argmax", "abstain_share",
}


def split(n: int, seed: int, sharpen: float = 2.0, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An over-confident model (temperature `sharpen`) on exchangeable examples."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    y = (rng.random(n)[:, None] > np.cumsum(softmax(z, axis=1), axis=1)).sum(axis=1)
    return y, softmax(sharpen * z, axis=1)


@pytest.fixture(scope="module")
def splits():
    return split(800, 0), split(800, 1), split(1500, 2)


def test_report_keys_and_json(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    report = uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig())
    assert set(report) == REPORT_KEYS
    json.dumps(report, allow_nan=False)  # plain JSON, no numpy types, no NaN or infinity
    assert all(type(report[k]) is float for k in ("ece", "brier", "nll", "temperature", "aurc", "expected_cost"))


def test_report_fits_on_validation_and_measures_on_test(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    report = uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig())
    assert report["ece"] == pytest.approx(calibration.ece(y_test, p_test))
    fitted = calibration.fit_recalibration(y_val, p_val, "bias_temperature")
    assert report["recalibration"] == "bias_temperature"
    assert report["temperature"] == pytest.approx(fitted.temperature)
    assert report["class_bias"] == pytest.approx(list(fitted.bias))
    assert report["temperature"] == pytest.approx(2.0, rel=0.15)
    assert max(abs(b) for b in report["class_bias"]) < 0.2  # this model does not lean to a class
    assert report["ece_recalibrated"] < report["ece"] / 2
    assert report["nll_recalibrated"] < report["nll"]
    assert report["conformal_coverage"] >= 0.87 and report["conformal_aps_coverage"] >= 0.87
    assert report["selective_target_reached"] and report["selective_accuracy"] > 0.85
    assert 0 < report["selective_coverage"] < 1
    assert report["expected_cost"] < report["expected_cost_argmax"]


def test_decisions_read_the_recalibrated_probabilities(splits):
    """A model leaning to class 1: the bias fitted on validation undoes the lean, and the numbers that
    decide (selective prediction, conformal sets) are those of the recalibrated probabilities."""
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    lean = np.array([0.0, 3.0, 0.0])
    def leaned(p):
        return softmax(np.log(p) + lean, axis=1)
    given = calibration.fit_recalibration(y_val, leaned(p_val), "bias_temperature")
    report = uncertainty_report(y_val, leaned(p_val), y_cal, leaned(p_cal), y_test, leaned(p_test),
                                EvaluationConfig(), recalibration=given)
    assert report["class_bias"][1] < -0.5 < report["class_bias"][2]
    decided = calibration.recalibrate(leaned(p_test), given)
    assert (decided.argmax(axis=1) == y_test).mean() > (leaned(p_test).argmax(axis=1) == y_test).mean() + 0.05
    assert report["ece_recalibrated"] == pytest.approx(calibration.ece(y_test, decided))
    assert report["ece"] == pytest.approx(calibration.ece(y_test, leaned(p_test)))
    temperature_only = uncertainty_report(y_val, leaned(p_val), y_cal, leaned(p_cal), y_test, leaned(p_test),
                                          EvaluationConfig(recalibration="temperature"))
    assert temperature_only["class_bias"] == [0.0, 0.0, 0.0]
    assert report["conformal_set_size"] < temperature_only["conformal_set_size"]


def test_an_unreachable_target_is_reported_as_such(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    wrong = (p_val.argmax(axis=1) + 1) % 3  # every validation prediction wrong
    report = uncertainty_report(wrong, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig())
    assert report["selective_target_reached"] is False
    assert report["selective_threshold"] is None and report["selective_accuracy"] is None
    assert report["selective_coverage"] == 0.0


def test_config_reaches_every_part(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    cfg = EvaluationConfig(ece_bins=5, conformal_alpha=0.3, abstain_cost=2.0, cost_matrix=(1 - np.eye(3)).tolist())
    report = uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, cfg)
    default = uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig())
    assert report["ece"] == pytest.approx(calibration.ece(y_test, p_test, n_bins=5))
    assert report["conformal_set_size"] < default["conformal_set_size"]
    assert report["abstain_share"] == 0.0  # abstaining costs more than any error
    with pytest.raises(ValueError, match="3 x 3"):
        uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test,
                           EvaluationConfig(cost_matrix=[[0, 1], [1, 0]]))


def test_per_group_only_when_groups_are_given(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    groups = np.where(np.arange(len(y_test)) < 5, "tiny", np.where(np.arange(len(y_test)) % 2, "odd", "even"))
    report = uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig(), groups_test=groups)
    per_group = report["per_group"]
    assert per_group["min_group_size"] == 10 and per_group["small_groups"] == {"tiny": 5}
    assert set(per_group["groups"]) == {"odd", "even"}
    assert per_group["worst_group"]["accuracy"] in {"odd", "even"}
    json.dumps(per_group, allow_nan=False)
    assert "per_group" not in uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig())


def test_mismatched_inputs_are_rejected(splits):
    (y_val, p_val), (y_cal, p_cal), (y_test, p_test) = splits
    with pytest.raises(ValueError, match="label_ids"):
        uncertainty_report(y_val, p_val, y_cal, p_cal, y_test, p_test, EvaluationConfig(), label_ids=[0, 1])
    with pytest.raises(ValueError, match="numbers of classes"):
        uncertainty_report(y_val % 2, p_val[:, :2] / p_val[:, :2].sum(1, keepdims=True), y_cal, p_cal,
                           y_test, p_test, EvaluationConfig())


def test_calibration_metrics_for_a_baseline():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.35, 0.65]])
    assert calibration_metrics(y, p, n_bins=10) == pytest.approx({"ece": 0.25, "brier": 0.645,
                                                                  "nll": calibration.nll(y, p)})


def test_presets_carry_an_evaluation_block_and_overrides_are_checked():
    quick = config.load_preset("quick")
    assert quick.evaluation == dataclasses.replace(EvaluationConfig(), baseline_shots=[])  # no base model: minutes
    assert config.load_preset("standard").evaluation.baseline_shots == [0, 4]
    changed = config.apply_overrides(quick, {"evaluation": {"conformal_alpha": 0.2}})
    assert changed.evaluation == dataclasses.replace(quick.evaluation, conformal_alpha=0.2)
    with pytest.raises(config.ConfigError, match="conformal_alpha must be in"):
        config.apply_overrides(quick, {"evaluation": {"conformal_alpha": 1.5}})
    with pytest.raises(config.ConfigError):
        config.apply_overrides(quick, {"evaluation": {"alpha": 0.2}})


def preset_file(tmp_path, evaluation: str):
    path = tmp_path / "p.yaml"
    path.write_text("max_train: 1\nmax_validation: 1\nmax_test: 1\nmax_length: 32\nbalance: false\n" + evaluation)
    return str(path)


def test_preset_without_an_evaluation_block_gets_the_defaults(tmp_path):
    assert config.load_preset(preset_file(tmp_path, "")).evaluation == EvaluationConfig()


def test_preset_evaluation_block_is_checked(tmp_path):
    with pytest.raises(config.ConfigError, match=r"evaluation: unknown key\(s\) \['bins'\]"):
        config.load_preset(preset_file(tmp_path, "evaluation: {bins: 10}\n"))
    with pytest.raises(config.ConfigError, match="cost_matrix must be"):
        config.load_preset(preset_file(tmp_path, "evaluation: {cost_matrix: [[0, 1], [1]]}\n"))
    with pytest.raises(config.ConfigError, match="ece_bins must be a positive integer"):
        config.load_preset(preset_file(tmp_path, "evaluation: {ece_bins: 0}\n"))
    with pytest.raises(config.ConfigError, match=r"recalibration must be one of \['bias_temperature', 'temperature'\], got 'platt'"):
        config.load_preset(preset_file(tmp_path, "evaluation: {recalibration: platt}\n"))
    block = "evaluation: {cost_matrix: [[0, 1], [5, 0]], abstain_cost: 0.5}\n"
    loaded = config.load_preset(preset_file(tmp_path, block))
    assert loaded.evaluation.cost_matrix == [[0, 1], [5, 0]] and loaded.evaluation.abstain_cost == 0.5
