"""The sepsis pipeline on the shipped model: causal scores, explanations, trust checks, held-out operating point."""
from __future__ import annotations

import numpy as np
import pytest

from medai_core.models import get_spec, load_model
from medai_core.workspaces.vitals import sepsis as S

SPEC = get_spec("sepsis_gru")


@pytest.fixture(scope="module")
def model():
    return load_model("sepsis_gru")


@pytest.fixture(scope="module")
def record():
    return S.load_record(S.synthetic_sepsis_record("deteriorating"), SPEC)


def test_risk_at_each_hour_uses_rows_up_to_it_only(model, record):
    full = S.score_record(model, SPEC, record)
    assert full.risk.shape == (record.n_hours,) and np.all((full.risk > 0) & (full.risk < 1))
    lines = S.synthetic_sepsis_record("deteriorating").decode().splitlines()
    for cut in (1, 7, 20):
        part = S.load_record(("\n".join(lines[: cut + 1]) + "\n").encode(), SPEC)
        np.testing.assert_allclose(S.score_record(model, SPEC, part).risk, full.risk[:cut], rtol=1e-5, atol=1e-6)
    # the attention of hour t never looks forward
    assert np.allclose(np.triu(full.attention, 1), 0)
    np.testing.assert_allclose(full.attention.sum(1), 1, rtol=1e-5)


def test_the_deteriorating_demo_alarms_and_the_stable_one_does_not(model, record):
    bad = S.score_record(model, SPEC, record)
    ok = S.score_record(model, SPEC, S.load_record(S.synthetic_sepsis_record("stable"), SPEC))
    assert bad.alarm.any() and not ok.alarm.any()
    assert bad.risk[-1] > 3 * ok.risk[-1]


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_explain_one_hour(model, record, method):
    exp = S.explain_hour(model, SPEC, record, 25, method)
    assert exp.attributions.shape == (26, len(SPEC.extra["variables"]))
    assert np.isfinite(exp.attributions).all() and np.abs(exp.attributions).sum() > 0
    if method == "integrated_gradients":
        assert exp.diagnostics["relative_delta"] < 0.05
    with pytest.raises(S.InputError):
        S.explain_hour(model, SPEC, record, record.n_hours, method)


def test_trust_checks_and_exports(model, record):
    exp = S.explain_hour(model, SPEC, record, 25)
    rep = S.trust_sepsis(model, SPEC, record, 25, "integrated_gradients", exp)
    assert rep.cascade.stages and np.isfinite(rep.faithfulness.deletion_auc)
    assert rep.summary()["verdict"] and rep.faithfulness.verdict
    assert rep.cascade.trained.shape == exp.attributions.shape
    csv = S.risk_csv(record, S.score_record(model, SPEC, record)).decode().splitlines()
    assert csv[0] == "row,ICULOS,risk,alarm" and len(csv) == record.n_hours + 1
    assert S.attributions_csv(SPEC, record, exp).decode().startswith("ICULOS,HR,O2Sat")


def test_operating_point_from_the_card():
    op = S.operating_point(SPEC)
    assert 0 < op["threshold"] < 1 and op["table"]
    for k in ("utility", "auroc", "auprc", "sensitivity_patients", "ppv_patients", "alarm_episodes_per_patient_day",
              "median_warning_hours"):
        assert np.isfinite(op[k]), k


def test_case_report_pdf(model, record):
    from medai_core.report.pdf import build_pdf

    sc = S.score_record(model, SPEC, record)
    exp = S.explain_hour(model, SPEC, record, 25)
    rep = S.sepsis_report(record, SPEC, sc, 25, exp, intended_use=S.INTENDED_USE)
    assert rep.prediction.startswith("Alarm from ICU hour") and len(rep.figures) == 2
    assert rep.tables[0].rows and rep.explanation_method
    assert build_pdf(rep, False)[:4] == b"%PDF"


def test_sepsis_label_is_never_an_input(model, record):
    lines = S.synthetic_sepsis_record("deteriorating").decode().splitlines()
    flipped = [lines[0]] + [line[: line.rindex("|")] + "|1" for line in lines[1:]]
    other = S.load_record(("\n".join(flipped) + "\n").encode(), SPEC)
    assert other.recorded_label.all() and not record.recorded_label.any()
    np.testing.assert_array_equal(S.score_record(model, SPEC, other).risk, S.score_record(model, SPEC, record).risk)


def test_batched_scoring_equals_one_at_a_time(model, record):
    lines = S.synthetic_sepsis_record("deteriorating").decode().splitlines()
    recs = [record, S.load_record(S.synthetic_sepsis_record("stable"), SPEC)] + [
        S.load_record(("\n".join(lines[: k + 1]) + "\n").encode(), SPEC) for k in (1, 5, 17)]
    for one, many in zip((S.score_record(model, SPEC, r) for r in recs), S.score_records(model, SPEC, recs, batch_size=2)):
        np.testing.assert_allclose(many.risk, one.risk, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(many.alarm, one.alarm)
        np.testing.assert_allclose(many.attention, one.attention, atol=1e-6)
