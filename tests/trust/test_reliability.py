"""Held-out reliability: exact checks on constructed data, the shipped held-out files (fresh and matching
the model cards), and the figure builders."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from medai_core.errors import InputError
from medai_core.models import MODELS, assets_dir, get_spec, read_card
from medai_core.models.spec import sha256_file
from medai_core.trust.heldout import HeldOutError, heldout_path, load_heldout
from medai_core.trust.alarms import alarm_events, alarm_operating_point, alarm_probability, platt, quantile_coverage
from medai_core.trust.calibration import operating_point, reliability_curve, threshold_sweep, wilson_interval

SHIPPED = sorted(MODELS)


# ---------------------------------------------------------------- intervals
def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None
    with pytest.raises(InputError):
        wilson_interval(11, 10)


# ---------------------------------------------------------------- reliability curve
def test_exactly_calibrated_bins_have_zero_ece():
    # bin k holds 20 cases predicted (k + 0.5) / 10 of which exactly that share is positive
    probs, outcomes = [], []
    for k in range(10):
        p = (k + 0.5) / 10
        probs += [p] * 20
        outcomes += [1] * round(20 * p) + [0] * (20 - round(20 * p))
    c = reliability_curve(probs, outcomes)
    assert c.ece == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(c.mean_predicted, c.observed) and c.counts.tolist() == [20] * 10 and c.n == 200
    assert np.all(c.ci_low <= c.observed) and np.all(c.observed <= c.ci_high)


def test_perfectly_calibrated_sample_has_ece_near_zero_and_miscalibrated_does_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    y = rng.uniform(size=p.size) < p
    assert reliability_curve(p, y).ece < 0.01
    assert reliability_curve(p ** 3, y).ece > 0.1  # over-confident about negatives


def test_bins_edges_and_empty_bins():
    c = reliability_curve([0.0, 0.1, 0.95, 1.0], [0, 0, 1, 1], n_bins=10)
    assert c.counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]  # 0.1 opens bin 1; 1.0 closes the last bin
    assert np.isnan(c.observed[2]) and np.isnan(c.ci_low[2]) and c.observed[9] == 1.0
    assert c.bin_index(1.0) == 9 and c.bin_index(0.0) == 0 and c.bin_index(0.25) == 2
    assert c.ece == pytest.approx((1 * 0 + 1 * 0.1 + 2 * 0.025) / 4)


def test_ece_matches_the_training_code_the_cards_use():
    from medai_core.train.metrics import binary_ece, expected_calibration_error

    rng = np.random.default_rng(1)
    p = rng.uniform(size=500)
    y = rng.uniform(size=500) < p ** 1.5
    assert reliability_curve(p, y).ece == pytest.approx(binary_ece(p, y), abs=1e-12)
    probs = rng.dirichlet(np.ones(4), size=300)
    labels = rng.integers(0, 4, 300)
    top = probs.max(1)
    assert reliability_curve(top, probs.argmax(1) == labels).ece == pytest.approx(
        expected_calibration_error(probs, labels), abs=1e-12)


@pytest.mark.parametrize("probs, outcomes, bins", [([0.2, 0.3], [1], 10), ([0.2, 1.2], [1, 0], 10),
                                                   ([0.2, float("nan")], [1, 0], 10), ([0.2], [2], 10),
                                                   ([0.2], [1], 0)])
def test_bad_inputs_raise_input_error(probs, outcomes, bins):
    with pytest.raises(InputError):
        reliability_curve(probs, outcomes, n_bins=bins)


# ---------------------------------------------------------------- operating point
def test_known_confusion_matrix():
    # 10 positives: 8 at 0.9 (TP), 2 at 0.1 (FN); 10 negatives: 4 at 0.7 (FP), 6 at 0.2 (TN)
    probs = [0.9] * 8 + [0.1] * 2 + [0.7] * 4 + [0.2] * 6
    y = [1] * 10 + [0] * 10
    op = operating_point(probs, y, 0.5)
    assert (op.tp, op.fn, op.fp, op.tn, op.n, op.flagged) == (8, 2, 4, 6, 20, 12)
    assert (op.sensitivity, op.specificity, op.prevalence) == (0.8, 0.6, 0.5)
    assert op.ppv == pytest.approx(8 / 12) and op.npv == pytest.approx(6 / 8)
    assert op.sensitivity_ci == wilson_interval(8, 10) and op.npv_ci == wilson_interval(6, 8)
    # a probability equal to the threshold is flagged, as in the models' decision rules
    assert operating_point(probs, y, 0.7).fp == 4 and operating_point(probs, y, 0.70001).fp == 0


def test_zero_denominators_are_none_not_errors():
    op = operating_point([0.1, 0.2, 0.3], [0, 0, 0], 0.5)  # no positives, nothing flagged
    assert op.sensitivity is None and op.sensitivity_ci is None and op.ppv is None and op.ppv_ci is None
    assert op.specificity == 1.0 and op.npv == 1.0 and op.prevalence == 0.0
    op = operating_point([0.6, 0.9], [1, 1], 0.5)  # no negatives, nothing below the threshold
    assert op.specificity is None and op.npv is None and op.sensitivity == 1.0
    op = operating_point([], [], 0.5)
    assert op.n == 0 and op.prevalence is None and op.sensitivity is None and op.ppv is None
    with pytest.raises(InputError):
        operating_point([0.5], [1], 1.5)


def test_threshold_sweep_is_monotone_and_matches_operating_point():
    rng = np.random.default_rng(2)
    p = np.round(rng.uniform(size=400), 2)  # ties at the thresholds on purpose
    y = rng.uniform(size=400) < p
    s = threshold_sweep(p, y)
    assert s.thresholds[0] == 0.0 and s.thresholds[-1] == 1.0 and len(s.thresholds) == 101
    assert np.all(np.diff(s.sensitivity) <= 0) and np.all(np.diff(s.specificity) >= 0)
    for t in (0.0, 0.25, 0.5, 0.73, 1.0):
        op = operating_point(p, y, t)
        k = int(np.argmin(np.abs(s.thresholds - t)))
        for name in ("sensitivity", "specificity", "ppv", "npv"):
            want = getattr(op, name)
            got = getattr(s, name)[k]
            assert (np.isnan(got) if want is None else got == pytest.approx(want)), (t, name)


# ---------------------------------------------------------------- forecasters
def test_quantile_coverage_of_true_quantiles_is_nominal():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(20_000, 4))
    q = np.broadcast_to(np.array([-1.2815516, 0.0, 1.2815516]), (20_000, 4, 3))
    assert np.allclose(quantile_coverage(y, q), [0.1, 0.5, 0.9], atol=0.01)
    mask = np.zeros(y.shape, bool)
    mask[:2, 0] = True
    assert quantile_coverage(np.array([[0.5], [2.0]]), np.array([[[0.0, 1.0, 3.0]], [[0.0, 1.0, 3.0]]])).tolist() == [0, 0.5, 1]
    assert np.isnan(quantile_coverage(y, q, np.zeros(y.shape, bool))).all()


def test_alarm_probability_reads_the_quantiles():
    q = np.array([[[60.0, 70.0, 85.0]]])  # one window, one step: 10/50/90% quantiles
    assert alarm_probability(q, 60.0, "low")[0] == pytest.approx(0.1)
    assert alarm_probability(q, 70.0, "low")[0] == pytest.approx(0.5)
    assert alarm_probability(q, 85.0, "high")[0] == pytest.approx(0.1)
    assert alarm_probability(q, 40.0, "low")[0] < 0.01 and alarm_probability(q, 120.0, "high")[0] < 0.01
    # the largest step counts; a step whose 80% interval reaches the limit scores >= 0.1
    path = np.array([[80.0, 90.0, 100.0], [64.0, 75.0, 90.0], [70.0, 80.0, 95.0]])
    assert alarm_probability(path, 65.0, "low") == pytest.approx(alarm_probability(path[1:2], 65.0, "low"))
    assert alarm_probability(path, 65.0, "low") > 0.1
    # Platt is monotone and (1, 0) leaves probabilities alone
    raw = np.linspace(0.01, 0.99, 50)
    assert np.allclose(platt(raw, (1.0, 0.0)), raw) and np.all(np.diff(platt(raw, (0.6, 0.8))) > 0)
    assert alarm_probability(q, 60.0, "low", (1.0, 0.0))[0] == pytest.approx(0.1)
    with pytest.raises(InputError):
        alarm_probability(q, 60.0, "sideways")


def test_alarm_events_need_an_observed_crossing():
    y = np.array([[70.0, 60.0, 80.0], [70.0, 60.0, 80.0], [70.0, 65.0, 80.0]])
    mask = np.array([[True, True, True], [True, False, True], [True, True, True]])
    assert alarm_events(y, mask, 65.0, "low").tolist() == [True, False, False]  # strict: 65 is no event
    assert alarm_events(y, mask, 75.0, "high").tolist() == [True, True, True]


# ---------------------------------------------------------------- the shipped held-out files
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_heldout_file_is_fresh_and_small(name):
    path = heldout_path(name)
    assert path.exists(), f"run python -m medai_core.train.heldout --models {name}"
    assert path.stat().st_size < 200 * 1024
    ho = load_heldout(name)
    assert ho.weights_sha256 == sha256_file(assets_dir() / get_spec(name).weights), "stale: regenerate the file"
    assert ho.model == name and ho.split == "test"
    card = read_card(name)
    if ho.kind == "classifier":
        assert len(ho.probs) == len(ho.outcomes) == ho.n == card["test"]["n"]
        assert 0 <= ho.threshold <= 1 and ho.probs.min() >= 0 and ho.probs.max() <= 1
    else:
        assert ho.n == card["test"]["n"] and ho.coverage and ho.alarms
        for a in ho.alarms:
            assert len(a.scores) == len(a.outcomes) > 0 and 0 <= a.threshold <= 1
    assert f"{name}.heldout.json" in (assets_dir() / get_spec(name).card).read_text()


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def test_support_heldout_reproduces_the_card():
    ho, t = load_heldout("support_ftt"), read_card("support_ftt")["test"]
    assert round(_auroc(ho.outcomes, ho.probs), 3) == round(t["auroc"], 3) == 0.865
    assert ho.threshold == pytest.approx(t["threshold"], abs=1e-4)
    op = operating_point(ho.probs, ho.outcomes, ho.threshold)
    assert op.sensitivity == pytest.approx(t["sensitivity"], abs=1e-3)
    assert op.specificity == pytest.approx(t["specificity"], abs=1e-3)
    assert op.ppv == pytest.approx(t["ppv"], abs=1e-3) and op.npv == pytest.approx(t["npv"], abs=1e-3)
    assert reliability_curve(ho.probs, ho.outcomes).ece == pytest.approx(t["ece"], abs=1e-3)


def test_busi_heldout_reproduces_the_card():
    from medai_core.workspaces.imaging.pipeline import decide_indices

    ho, card = load_heldout("busi_cnn"), read_card("busi_cnn")
    mal = ho.labels.index("malignant")
    assert ho.threshold == pytest.approx(card["decision_threshold"], abs=1e-4)
    assert np.array_equal(ho.probs, ho.class_probs[:, mal]) and np.array_equal(ho.outcomes, ho.y == mal)
    pred = decide_indices(ho.class_probs, mal, ho.threshold)
    assert round(float((pred == ho.y).mean()), 3) == round(card["test"]["accuracy"], 3)
    assert round(_auroc(ho.outcomes, ho.probs), 3) == round(card["test"]["malignant_auroc"], 3)
    assert np.bincount(ho.y, minlength=3).tolist() == [sum(r) for r in card["test"]["confusion"]]


def test_notes_heldout_reproduces_the_card():
    from sklearn.metrics import f1_score

    ho, t = load_heldout("notes_tfm"), read_card("notes_tfm")["test"]
    pred = ho.class_probs.argmax(1)
    assert np.allclose(ho.probs, ho.class_probs.max(1)) and np.array_equal(ho.outcomes, pred == ho.y)
    assert round(float(ho.outcomes.mean()), 3) == round(t["accuracy"], 3)
    f1 = f1_score(ho.y, pred, average="macro", labels=np.arange(len(ho.labels)), zero_division=0)
    assert round(float(f1), 3) == round(t["macro_f1"], 3)
    assert reliability_curve(ho.probs, ho.outcomes).ece == pytest.approx(t["ece"], abs=2e-3)
    p, y = ho.one_vs_rest("Neurology")
    assert y.sum() == t["per_class"]["Neurology"]["n"] and p.shape == (ho.n,)
    with pytest.raises(InputError):
        ho.one_vs_rest("Dermatology")


def test_icu_heldout_reproduces_the_card_coverage():
    ho, t = load_heldout("icu_gru"), read_card("icu_gru")["test"]
    assert [c.signal for c in ho.coverage] == list(t["signals"])
    for c in ho.coverage:
        assert c.nominal == (0.1, 0.5, 0.9) and c.by_step.shape == (6, 3)
        assert round(c.interval_coverage, 3) == round(t["signals"][c.signal]["coverage80"], 3)
    assert round(float(np.mean([c.interval_coverage for c in ho.coverage])), 3) == round(t["mean_coverage80"], 3)
    a = ho.alarm("MAP_low_65")
    op = alarm_operating_point(a)
    assert a.direction == "low" and a.limit == 65 and op.tp + op.fn == a.outcomes.sum() > 0
    # the default threshold is the page's warning (80% interval reaches the limit): raw score 0.1
    assert a.threshold == pytest.approx(platt(0.1, a.calibration), abs=1e-4)


def test_cgm_heldout_reproduces_the_card_coverage():
    ho, t = load_heldout("cgm_gru"), read_card("cgm_gru")["test"]
    (c,) = ho.coverage
    assert c.step_minutes == 5 and c.by_step.shape == (12, 3)
    for minutes in (30, 60):
        row = c.by_step[minutes // 5 - 1]
        assert round(float(row[2] - row[0]), 3) == round(t[f"coverage80_{minutes}"], 3)
    assert {a.key for a in ho.alarms} == {"Glucose_low_70", "Glucose_high_180", "Glucose_high_250"}


def test_alarm_score_of_a_forecast_matches_the_file_definition():
    ho = load_heldout("cgm_gru")
    a = ho.alarm("Glucose_low_70")
    q = np.stack([np.full(12, 62.0), np.full(12, 75.0), np.full(12, 95.0)], -1)  # (H, 3) of one forecast
    assert a.score(q) == pytest.approx(platt(alarm_probability(q, 70.0, "low"), a.calibration))
    assert a.score(q) >= a.threshold  # its 80% interval reaches 70: the page warns, the alarm fires
    with pytest.raises(InputError):
        a.score(q[:6])  # a shorter forecast would change what the score means


# ---------------------------------------------------------------- loading errors
def _copy_assets(tmp_path, name):
    spec = get_spec(name)
    for f in (spec.card_json, spec.card, spec.weights, f"{name}.heldout.json"):
        shutil.copy(assets_dir() / f, tmp_path / f)


def test_missing_and_stale_heldout_raise_typed_errors(tmp_path, monkeypatch):
    _copy_assets(tmp_path, "support_ftt")
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(tmp_path))
    assert load_heldout("support_ftt").n > 0
    d = json.loads((tmp_path / "support_ftt.heldout.json").read_text())
    d["weights_sha256"] = "0" * 64
    (tmp_path / "support_ftt.heldout.json").write_text(json.dumps(d))
    with pytest.raises(HeldOutError, match="other weights"):
        load_heldout("support_ftt")
    assert load_heldout("support_ftt", verify=False).n == d["n"]
    (tmp_path / "support_ftt.heldout.json").write_text("{not json")
    with pytest.raises(HeldOutError, match="cannot be read"):
        load_heldout("support_ftt")
    (tmp_path / "support_ftt.heldout.json").unlink()
    with pytest.raises(HeldOutError, match="python -m medai_core.train.heldout"):
        load_heldout("support_ftt")


def test_reliability_core_is_torch_free():
    code = "import sys, medai_core.trust.calibration, medai_core.trust.alarms, medai_core.trust.heldout, medai_core.plots.trust; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(assets_dir().parent))
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the generator's pure helpers
def test_card_section_is_replaced_not_duplicated():
    from medai_core.train.heldout import SECTION, update_card

    md = "# Card\n\n## Test\nnumbers\n\n## Intended use and limits\n- demo\n"
    once = update_card(md, f"{SECTION}\nfirst\n")
    assert once.index(SECTION) < once.index("## Intended use") and once.count(SECTION) == 1
    twice = update_card(once, f"{SECTION}\nsecond\n")
    assert twice.count(SECTION) == 1 and "second" in twice and "first" not in twice and twice.endswith("- demo\n")
    assert update_card("# Card\n", f"{SECTION}\nx\n").endswith(f"{SECTION}\nx\n")


def test_every_registered_model_has_a_heldout_builder():
    from medai_core.train.heldout import BUILDERS, DATA_PATHS, HELDOUT_MODELS

    assert set(BUILDERS) == set(DATA_PATHS) == set(HELDOUT_MODELS) == set(SHIPPED)


def test_alarm_definitions_come_from_the_signal_specs():
    from medai_core.models.forecaster import ICU_SIGNALS, ICU_TARGETS
    from medai_core.train.heldout import alarm_definitions

    defs = alarm_definitions(ICU_SIGNALS[:ICU_TARGETS])
    got = {(d.signal.name, d.direction, d.limit) for d in defs}
    assert ("MAP", "low", 65.0) in got and ("HR", "high", 130.0) in got and not any(d[0] == "MAP" and d[1] == "high" for d in got)
    assert all(ICU_SIGNALS[d.column] is d.signal for d in defs)


def test_alarm_calibration_falls_back_without_events():
    from medai_core.train.heldout import fit_alarm_calibration

    rng = np.random.default_rng(4)
    raw = rng.uniform(0.001, 0.5, 2000)
    assert fit_alarm_calibration(raw, np.zeros(2000, bool)) == (1.0, 0.0)
    events = rng.uniform(size=2000) < np.clip(2 * raw, 0, 1)  # the raw score understates the risk 2x
    a, b = fit_alarm_calibration(raw, events)
    assert a > 0 and reliability_curve(platt(raw, (a, b)), events).ece < reliability_curve(raw, events).ece


# ---------------------------------------------------------------- figures
def test_reliability_figure_traces_and_markers():
    from medai_core.plots.trust import reliability_figure

    c = reliability_curve([0.05, 0.15, 0.15, 0.85, 0.95], [0, 0, 1, 1, 1])
    fig = reliability_figure(c, current_prob=0.9, threshold=0.3, title="t")
    names = [t.name for t in fig.data]
    assert names == ["perfect calibration", f"held-out (ECE {c.ece:.3f})", "cases per bin"]
    assert len(fig.data[1].x) == 4 and fig.data[1].error_y.array is not None  # empty bins are not drawn
    assert list(fig.data[2].y) == c.counts.tolist()
    xs = sorted({s.x0 for s in fig.layout.shapes})
    assert xs == [0.3, 0.9] and len(fig.layout.shapes) == 4  # each line through both panels
    assert any("this case 0.90" in a.text for a in fig.layout.annotations)
    assert len(reliability_figure(c).layout.shapes) == 0


def test_threshold_and_coverage_figures():
    from medai_core.plots.trust import coverage_figure, threshold_figure

    s = threshold_sweep([0.1, 0.4, 0.6, 0.9], [0, 1, 0, 1])
    fig = threshold_figure(s, 0.5)
    assert [t.name for t in fig.data] == ["sensitivity", "specificity", "PPV", "NPV"]
    assert len(fig.data[0].x) == 101 and fig.layout.shapes[0].x0 == 0.5
    assert fig.data[2].y[-1] is None  # PPV undefined when nothing is flagged: a gap, not a crash
    ho = load_heldout("icu_gru")
    fig = coverage_figure(ho.coverage)
    assert [t.name for t in fig.data] == ["perfect"] + [c.label for c in ho.coverage]
    assert list(fig.data[1].x) == [0.1, 0.5, 0.9]


def test_alarm_new_events_only_leaves_out_windows_already_past_the_limit():
    """Windows whose last value was already past the limit inflate an alarm's sensitivity (the forecaster
    gets them from the last value); the held-out files record them and new_events_only() drops them."""
    from medai_core.trust.heldout import load_heldout
    from medai_core.trust.calibration import operating_point

    a = load_heldout("icu_gru").alarm("MAP_low_65")
    assert a.at_start.shape == a.scores.shape and 0 < a.at_start.sum() < a.scores.size
    s, o = a.new_events_only()
    assert len(s) == int((~a.at_start).sum()) and int(o.sum()) == int((a.outcomes & ~a.at_start).sum())
    full = operating_point(a.scores, a.outcomes, a.threshold).sensitivity
    new = operating_point(s, o, a.threshold).sensitivity
    assert new < full  # measured 0.74 vs 0.83


def test_reliability_view_picks_the_right_cases_and_words():
    from medai_core.trust.heldout import load_heldout, reliability_view

    sup = reliability_view(load_heldout("support_ftt"))
    assert sup.x_title == "predicted probability" and sup.default_threshold == pytest.approx(0.314, abs=1e-3)
    notes = load_heldout("notes_tfm")
    top = reliability_view(notes)
    assert top.x_title == "top-1 confidence" and len(top.probs) == notes.n
    one = reliability_view(notes, notes.labels[0])
    assert one.default_threshold == 0.5 and int(one.outcomes.sum()) == int((notes.y == 0).sum())
    icu = load_heldout("icu_gru")
    a = icu.alarm("MAP_low_65")
    all_w, new = reliability_view(icu, "MAP_low_65"), reliability_view(icu, "MAP_low_65", new_only=True)
    assert len(all_w.probs) == a.scores.size and len(new.probs) == int((~a.at_start).sum())
    assert "new crossings only" in new.what and all_w.default_threshold == a.threshold
