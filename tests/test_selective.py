from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from helpers.evaluate import selective
from helpers.evaluate.selective import ABSTAIN


def binary(confidences: list[float], correct: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of class 0 with the given confidences; the label is 0 where the prediction is right."""
    c = np.array(confidences)
    return np.where(correct, 0, 1), np.column_stack([c, 1 - c])


def test_risk_coverage_and_aurc_by_hand():
    # most confident first: right, wrong, right, wrong -> risk 0, 1/2, 1/3, 1/2
    y, p = binary([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    curve = selective.risk_coverage(y, p)
    assert curve["threshold"].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert curve["coverage"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert curve["risk"].tolist() == pytest.approx([0, 1 / 2, 1 / 3, 1 / 2])
    assert selective.aurc(y, p) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert selective.selective_accuracy(y, p, 0.5) == pytest.approx(0.5)
    assert selective.selective_accuracy(y, p, 0.7) == pytest.approx(2 / 3)


def test_tied_confidences_are_accepted_together():
    y, p = binary([0.9, 0.8, 0.8, 0.6], [True, False, True, False])
    curve = selective.risk_coverage(y, p)
    assert curve["coverage"].tolist() == pytest.approx([0.25, 0.75, 1.0])
    assert curve["risk"].tolist() == pytest.approx([0, 1 / 3, 1 / 2])
    assert selective.aurc(y, p) == pytest.approx(0.25 * 0 + 0.5 / 3 + 0.25 * 0.5)
    swapped, p_swapped = binary([0.9, 0.8, 0.8, 0.6], [True, True, False, False])
    assert selective.aurc(swapped, p_swapped) == pytest.approx(selective.aurc(y, p))


def test_a_confidence_that_ranks_errors_last_has_the_lower_aurc():
    good = binary([0.9, 0.8, 0.7, 0.6], [True, True, False, False])
    bad = binary([0.9, 0.8, 0.7, 0.6], [False, False, True, True])
    assert selective.aurc(*good) < selective.aurc(*bad)


def test_threshold_is_the_largest_coverage_reaching_the_target():
    # accuracy among accepted at thresholds .9 .8 .7 .6: 1, 1/2, 2/3, 1/2
    y, p = binary([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    assert selective.threshold_for_accuracy(y, p, 0.6) == pytest.approx(0.7)
    assert selective.threshold_for_accuracy(y, p, 0.99) == pytest.approx(0.9)
    assert selective.threshold_for_accuracy(y, p, 0.5) == pytest.approx(0.6)


def test_threshold_applied_to_test():
    y, p = binary([0.95, 0.85, 0.75, 0.65, 0.55], [True, True, False, True, False])
    outcome = selective.apply_threshold(y, p, 0.7, target_accuracy=0.9)
    assert outcome.reached
    assert outcome.coverage == pytest.approx(3 / 5)
    assert outcome.accuracy == pytest.approx(2 / 3)  # the validation target is not a promise on test
    none_answered = selective.apply_threshold(y, p, 0.99, target_accuracy=0.9)
    assert none_answered.coverage == 0.0 and none_answered.accuracy is None


def test_no_threshold_reaching_the_target_is_said_so():
    y, p = binary([0.9, 0.8], [False, False])
    threshold = selective.threshold_for_accuracy(y, p, 0.9)
    assert threshold is None
    outcome = selective.apply_threshold(y, p, threshold, target_accuracy=0.9)
    assert (outcome.reached, outcome.threshold, outcome.coverage, outcome.accuracy) == (False, None, 0.0, None)


def test_bayes_decisions_abstain_when_abstaining_is_cheaper_than_the_expected_error():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])  # expected error cost of the argmax: .1, .4, .5
    costs = selective.default_cost_matrix(2)
    assert selective.bayes_decisions(p, costs, 0.3).tolist() == [0, ABSTAIN, ABSTAIN]
    assert selective.bayes_decisions(p, costs, 0.45).tolist() == [0, 0, ABSTAIN]
    assert selective.bayes_decisions(p, costs, 0.5).tolist() == [0, 0, 0]  # a tie answers


def test_bayes_decisions_follow_an_asymmetric_cost_matrix():
    costs = np.array([[0.0, 1.0], [5.0, 0.0]])  # missing a true class 1 costs 5
    p = np.array([[0.8, 0.2]])  # predicting 0 costs .2 * 5 = 1 in expectation, predicting 1 costs .8
    assert selective.bayes_decisions(p, costs, 2.0).tolist() == [1]
    assert selective.bayes_decisions(p, costs, 0.5).tolist() == [ABSTAIN]


def test_abstention_matches_its_rule_on_random_probabilities():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=500)
    costs = rng.uniform(0.5, 3.0, size=(4, 4))
    np.fill_diagonal(costs, 0.0)
    actions = selective.bayes_decisions(p, costs, 0.6)
    expected = p @ costs
    np.testing.assert_array_equal(actions == ABSTAIN, expected.min(axis=1) > 0.6)
    answered = actions != ABSTAIN
    np.testing.assert_array_equal(actions[answered], expected.argmin(axis=1)[answered])


def test_realized_cost_by_hand():
    costs = np.array([[0.0, 1.0], [5.0, 0.0]])
    # right (0), wrong true 1 -> 0 (5), abstain (.3), wrong true 0 -> 1 (1)
    cost = selective.realized_cost(np.array([0, 1, 1, 0]), np.array([0, 0, ABSTAIN, 1]), costs, 0.3)
    assert cost == pytest.approx((0 + 5 + 0.3 + 1) / 4)


def test_calibrated_abstention_beats_always_answering():
    rng = np.random.default_rng(1)
    p = softmax(rng.normal(0, 1.5, size=(5000, 3)), axis=1)
    y = (rng.random(5000)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    outcome = selective.cost_outcome(y, p, None, abstain_cost=0.3)
    assert outcome.expected_cost < outcome.expected_cost_argmax - 0.02
    assert outcome.abstain_share == pytest.approx(np.mean(p.max(axis=1) < 0.7))
    assert selective.cost_outcome(y, p, None, abstain_cost=1.0).abstain_share == 0.0


def test_cost_matrix_shape_is_checked():
    with pytest.raises(ValueError, match="3 x 3"):
        selective.check_cost_matrix([[0, 1], [1, 0]], 3)
    with pytest.raises(ValueError, match="non-negative"):
        selective.check_cost_matrix([[0, -1], [1, 0]], 2)
