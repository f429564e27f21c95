"""The PhysioNet 2019 normalized utility on patients whose utility is worked out by hand, and against a direct
port of the challenge's per-hour loop."""
from __future__ import annotations

import numpy as np
import pytest

from medai_core.trust.utility import UtilityTable, best_threshold, normalized_utility, optimal_alarms, row_utilities

# septic: SepsisLabel 1 from row 10 of 20, so onset t_sepsis = 16 (rows are hours), d = t - 16 runs -16..+3
SEPTIC = np.array([0] * 10 + [1] * 10)
QUIET = np.zeros(10, int)


def _alarms(n: int, rows: range) -> np.ndarray:
    a = np.zeros(n, int)
    a[list(rows)] = 1
    return a


def test_hand_worked_rows_of_a_septic_patient():
    alarm, quiet = row_utilities(SEPTIC)
    # alarm: rows 0-3 (d -16..-13) earlier than -12: a false alarm's -0.05; row 4 (d -12): 0; up by 1/6 an hour
    # to 1 at row 10 (d -6); then down by 1/9 an hour to 0 at row 19 (d +3)
    expected_alarm = [-0.05] * 4 + [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1] + [k / 9 for k in range(8, -1, -1)]
    np.testing.assert_allclose(alarm, expected_alarm)
    # no alarm: nothing lost up to d -6, then down by 2/9 an hour to -2 at d +3
    np.testing.assert_allclose(quiet, [0.0] * 11 + [-2 * k / 9 for k in range(1, 10)])


def test_hand_worked_normalized_scores():
    # U(no alarms) = -2/9 (1 + ... + 9) = -10; optimal alarms rows 4..19: (0 + 1/6 + ... + 5/6 + 1) + (8/9 + ... + 0)
    # = 3.5 + 4 = 7.5
    t = UtilityTable([SEPTIC])
    assert t.u_none == pytest.approx(-10.0)
    assert t.u_best == pytest.approx(7.5)
    np.testing.assert_array_equal(optimal_alarms(SEPTIC), _alarms(20, range(4, 20)).astype(bool))
    # alarm from row 8 on: 4/6 + 5/6 + 1 + 4 = 6.5 -> (6.5 + 10) / (7.5 + 10)
    assert normalized_utility([SEPTIC], [_alarms(20, range(8, 20))]) == pytest.approx(16.5 / 17.5)
    # four alarms far too early and none later: 4 x -0.05 - 10 -> -0.2 / 17.5
    assert normalized_utility([SEPTIC], [_alarms(20, range(0, 4))]) == pytest.approx(-0.2 / 17.5)
    assert normalized_utility([SEPTIC], [np.zeros(20)]) == pytest.approx(0.0)
    assert normalized_utility([SEPTIC], [optimal_alarms(SEPTIC)]) == pytest.approx(1.0)
    # with a patient who never becomes septic and gets 4 false alarms: (6.5 - 0.2 + 10) / 17.5
    assert normalized_utility([SEPTIC, QUIET], [_alarms(20, range(8, 20)), _alarms(10, range(3, 7))]) == \
        pytest.approx(16.3 / 17.5)


def test_septic_from_the_first_hour_and_hours_after_the_late_limit():
    # label 1 from row 0 of 5: onset 6, d -6..-2: alarm 1, 8/9, 7/9, 6/9, 5/9; no alarm 0, -2/9 .. -8/9
    alarm, quiet = row_utilities(np.ones(5, int))
    np.testing.assert_allclose(alarm, [1, 8 / 9, 7 / 9, 6 / 9, 5 / 9])
    np.testing.assert_allclose(quiet, [0, -2 / 9, -4 / 9, -6 / 9, -8 / 9])
    # rows after d = +3 count nothing either way
    long = np.array([0] * 4 + [1] * 20)  # onset 10; rows 14..23 are after the late limit (d > 3)
    alarm, quiet = row_utilities(long)
    assert np.all(alarm[14:] == 0) and np.all(quiet[14:] == 0)


def _official(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The challenge's compute_prediction_utility, hour by hour as published (constants inline)."""
    dt_early, dt_optimal, dt_late, max_u_tp, min_u_fn, u_fp, u_tn = -12, -6, 3.0, 1, -2, -0.05, 0
    septic = bool(np.any(labels))
    t_sepsis = np.argmax(labels) - dt_optimal if septic else float("inf")
    m_1, m_2, m_3 = max_u_tp / (dt_optimal - dt_early), -max_u_tp / (dt_late - dt_optimal), min_u_fn / (dt_late - dt_optimal)
    b_1, b_2, b_3 = -m_1 * dt_early, -m_2 * dt_late, -m_3 * dt_optimal
    u = np.zeros(len(labels))
    for t in range(len(labels)):
        if t <= t_sepsis + dt_late:
            if septic and predictions[t]:
                u[t] = max(m_1 * (t - t_sepsis) + b_1, u_fp) if t <= t_sepsis + dt_optimal else m_2 * (t - t_sepsis) + b_2
            elif not septic and predictions[t]:
                u[t] = u_fp
            elif septic and not predictions[t]:
                u[t] = 0 if t <= t_sepsis + dt_optimal else m_3 * (t - t_sepsis) + b_3
            else:
                u[t] = u_tn
    return float(u.sum())


def test_vectorised_rows_equal_the_published_loop_on_random_patients():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        labels = np.zeros(n, int)
        if rng.random() < 0.6:
            labels[int(rng.integers(0, n)):] = 1
        pred = rng.random(n) < rng.random()
        alarm, quiet = row_utilities(labels)
        assert np.where(pred, alarm, quiet).sum() == pytest.approx(_official(labels, pred))


def test_threshold_search_and_input_checks():
    risk = np.concatenate([np.linspace(0, 0.2, 8), np.linspace(0.5, 0.9, 12)])  # high from row 8
    table = UtilityTable([SEPTIC])
    thr, score = best_threshold(table, risk)
    assert score == pytest.approx(table.normalized(risk >= thr)) and score >= 16.5 / 17.5 - 1e-9
    with pytest.raises(ValueError):
        normalized_utility([SEPTIC], [np.zeros(19)])
