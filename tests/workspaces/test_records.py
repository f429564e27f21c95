"""Records: the schema validation table, missing values, scoring, attributions and attention."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medai_core.workspaces.records import pipeline as R
from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.explain import EXPLAINERS
from medai_core.io.changes import NOT_SCORED, SET_MISSING, DataChange
from medai_core.trust.randomisation import randomised_copy, rank_correlation
from medai_core.io.records import (FEATURES, SCHEMA, SchemaError, load_records, record_from_form, schema_table,
                                   validate_records)
from medai_core.models import get_spec, load_model
from medai_core.models.support_ftt import SupportFTT, encode_records
from medai_core.workspaces.records.samples import synthetic_records


@pytest.fixture(scope="module")
def support():
    return load_model("support_ftt"), get_spec("support_ftt")


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def _good(n: int = 6) -> pd.DataFrame:
    return synthetic_records(n, seed=11)


def _with(df: pd.DataFrame, **changes) -> pd.DataFrame:
    df = df.copy().astype(object)
    for col, (row, value) in changes.items():
        df.loc[row, col] = value
    return df


BAD_TABLES = [
    ("missing required column", lambda: _good().drop(columns=["age", "hrt"]), SchemaError, r"Missing required columns: age, hrt"),
    ("required column all NaN", lambda: _good().assign(sps=np.nan), SchemaError, r"'sps'.*empty in every row; it is required"),
    ("required column never usable", lambda: _good().assign(age="sixty"), SchemaError,
     r"'age'.*must be a number.*sixty.*no row has a usable value"),
]

# Issue 13: one bad cell or row is set aside (a DataChange), no longer a refusal of the whole table.
SET_ASIDE = [
    ("wrong type", lambda: _with(_good(), age=(2, "sixty")), (3, "age", "sixty", SET_MISSING, "not a number")),
    ("out of range", lambda: _with(_good(), temp=(1, 52.0)),
     (2, "temp", "52.0", SET_MISSING, "outside the plausible range 25-45 °C")),
    ("impossible negative", lambda: _with(_good(), crea=(0, -1)),
     (1, "crea", "-1", SET_MISSING, "outside the plausible range 0.05-30 mg/dL")),
    ("unknown category", lambda: _with(_good(), sex=(0, "unknown")),
     (1, "sex", "unknown", SET_MISSING, "not one of: female, male")),
    ("binary not 0/1", lambda: _with(_good(), diabetes=(3, 2)), (4, "diabetes", "2", SET_MISSING, "not 0 (no) or 1 (yes)")),
    ("duplicate ids", lambda: _with(_good(), id=(1, "SYN-001")),
     (1, "id", "SYN-001", NOT_SCORED, "the same id is on more than one row; each patient needs a unique id")),
    ("blank id", lambda: _with(_good(), id=(2, "")), (3, "id", "", NOT_SCORED, "no id: the 'id' column is blank in this row")),
    ("infinite value", lambda: _with(_good(), hrt=(0, "inf")), (1, "hrt", "inf", SET_MISSING, "not a number")),
]


@pytest.mark.parametrize("name,make,change", SET_ASIDE, ids=[b[0] for b in SET_ASIDE])
def test_bad_cells_and_rows_are_set_aside(name, make, change):
    t = load_records(_csv(make()))
    assert len(t) == 6 and t.changes[0] == DataChange(change[0], change[1], "", *change[2:])


@pytest.mark.parametrize("name,make,err,match", BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_schema_validation_table(name, make, err, match):
    with pytest.raises(err, match=match):
        load_records(_csv(make()))


def test_schema_errors_are_all_listed_at_once():
    df = _good().drop(columns=["age"]).assign(sps=np.nan)  # issue 13: bad cells are no longer errors
    with pytest.raises(SchemaError) as info:
        load_records(_csv(df))
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("data,err", [
    (b"", EmptyInput), (b"   \n", EmptyInput), (b"age,sex\n", EmptyInput),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", UnsupportedFormat), (b'a,b\n"unterminated,1\n', UnsupportedFormat),
])
def test_unreadable_files(data, err):
    with pytest.raises(err):
        load_records(data)


def test_size_limits(monkeypatch):
    import medai_core.io.records as io_records

    monkeypatch.setattr(io_records, "MAX_ROWS", 3)
    with pytest.raises(TooLarge, match="more than 3 rows"):
        load_records(_csv(_good(5)))


def test_extra_and_absent_optional_columns_are_notices():
    df = _good().drop(columns=["alb", "urine"]).assign(hospdead=1, favourite_colour="blue")
    t = load_records(_csv(df))
    text = " ".join(t.notices)
    assert "alb, urine" in text and "favourite_colour" in text and "outcomes" in text
    assert t.frame["alb"].isna().all() and "hospdead" not in t.frame


def test_blank_cells_are_missing_not_zero():
    df = _with(_good(), crea=(0, ""), sex=(0, ""))
    t = load_records(_csv(df))
    assert np.isnan(t.frame.loc[0, "crea"]) and pd.isna(t.frame.loc[0, "sex"])
    x = encode_records(t.frame)
    j = FEATURES.index("crea")
    assert x[0, j, 1] == 1 and x[1, j, 1] == 0


def test_categories_are_case_insensitive_and_whitespace_tolerant():
    t = load_records(_csv(_with(_good(), sex=(0, " Female "))))
    assert t.frame.loc[0, "sex"] == "female"


def test_form_record_and_published_schema():
    t = record_from_form({"age": 70, "sex": "female", "dzgroup": "CHF", "crea": None})
    assert len(t) == 1 and np.isnan(t.frame.loc[0, "crea"]) and np.isnan(t.frame.loc[0, "hrt"])
    sch = schema_table()
    assert list(sch["column"]) == list(FEATURES)
    # issue 13: an impossible value is set to missing and listed (the form's widgets refuse it first)
    assert record_from_form({"age": 7}).changes[0] == DataChange(1, "age", "", "7", SET_MISSING,
                                                                 "outside the plausible range 18-110 years")


def test_missing_value_uses_learned_embedding(support):
    model, _ = support
    t = load_records(_csv(_good(1)))
    x = encode_records(t.frame)
    j = FEATURES.index("crea")
    miss = x.clone()
    miss[0, j, 1] = 1.0
    other = miss.clone()
    other[0, j, 0] = 123.0  # the value slot is ignored when flagged missing
    zero = x.clone()
    zero[0, j, 0] = 0.0  # what silent zero-fill would feed
    with torch.no_grad():
        p_miss, p_other, p_zero = model.predict_proba(miss), model.predict_proba(other), model.predict_proba(zero)
    assert torch.equal(p_miss, p_other)
    assert not torch.allclose(p_miss, p_zero)
    tok = model.tokenizer(miss)[0, j]
    assert torch.allclose(tok, model.tokenizer.missing[j])


def test_score_and_write_back(support):
    model, spec = support
    df = _good(7)
    t = load_records(_csv(df))
    s = R.score(model, spec, t)
    assert s.risk.shape == (7,) and ((s.risk > 0) & (s.risk < 1)).all()
    assert set(s.labels) <= set(spec.labels)
    assert all((lab == spec.positive_label) == (r >= s.threshold) for r, lab in zip(s.risk, s.labels))
    out = R.write_back(t, s)
    assert list(out.columns) == [*df.columns, "risk", "label", "warnings"] and len(out) == 7  # issue 13: warnings


def test_batch_scoring_matches_one_by_one(support):
    model, spec = support
    t = load_records(_csv(_good(9)))
    batch = R.score(model, spec, t).risk
    single = [R.score(model, spec, load_records(_csv(_good(9).iloc[[i]]))).risk[0] for i in range(9)]
    np.testing.assert_allclose(batch, single, atol=1e-6)


@pytest.mark.parametrize("method", EXPLAINERS.names(modalities="tabular"))
def test_every_tabular_explainer(support, method):
    model, spec = support
    t = load_records(_csv(_good(3)))
    exp = R.explain_record(model, spec, t, 1, method)
    assert exp.attributions.shape == (len(SCHEMA),) and np.isfinite(exp.attributions).all()
    d = exp.diagnostics
    # additivity: contributions sum to risk(record) - risk(reference)
    assert exp.attributions.sum() == pytest.approx(d["risk"] - d["reference_risk"], abs=2e-3)
    frame = R.attribution_frame(exp, t, 1)
    assert frame["attribution"].abs().is_monotonic_decreasing


def test_tabular_ig_completeness_is_tight(support):
    model, spec = support
    t = load_records(_csv(_good(2)))
    exp = R.explain_record(model, spec, t, 0, "integrated_gradients", n_steps=64)
    assert exp.diagnostics["relative_delta"] < 0.01


def test_reference_record_scores_zero_attribution(support):
    model, spec = support
    ref = R.reference_values(model)
    t = record_from_form(ref)
    exp = R.explain_record(model, spec, t, 0, "shapley_sampling", n_samples=8)
    assert np.abs(exp.attributions).max() < 1e-4


@pytest.mark.parametrize("method", EXPLAINERS.names(modalities="tabular"))
def test_randomised_model_changes_tabular_attributions(support, method):
    """Adebayo et al. 2018: attributions of a randomised model must not look like the trained model's."""
    model, spec = support
    t = load_records(_csv(_good(12)))
    corrs = []
    for row in range(6):
        a = R.explain_record(model, spec, t, row, method).attributions
        b = R.explain_record(randomised_copy(model, seed=row), spec, t, row, method).attributions
        corrs.append(rank_correlation(a, b))
    # signed attributions; magnitudes alone stay correlated (~0.7) because a random network also
    # responds most to features far from the reference: the sign carries the learned evidence
    assert np.median(corrs) < 0.3, corrs


def test_attention_rows_are_distributions(support):
    model, _ = support
    t = load_records(_csv(_good(2)))
    att = R.attention(model, t, 0)
    assert att.shape == (3, 4, len(SCHEMA)) and (att >= 0).all() and (att.sum(-1) <= 1 + 1e-5).all()
    full = R.attention_matrix(model, t, 0, layer=1)
    np.testing.assert_allclose(full.sum(-1), 1.0, atol=1e-5)


def test_global_importance(support):
    model, spec = support
    t = load_records(_csv(_good(20)))
    g = R.global_importance(model, spec, t, max_records=10)
    assert g.attrs["n_records"] == 10 and len(g) == len(SCHEMA)
    assert g["mean_abs"].is_monotonic_decreasing and np.isfinite(g["mean_abs"]).all()


def test_explain_row_out_of_range(support):
    model, spec = support
    t = load_records(_csv(_good(2)))
    with pytest.raises(InputError, match="does not exist"):
        R.explain_record(model, spec, t, 5)


def test_untrained_model_forward_shape():
    m = SupportFTT().eval()
    t = validate_records(_good(4))
    with torch.no_grad():
        out = m(encode_records(t.frame))
    assert out.shape == (4,) and torch.isfinite(out).all()


def test_case_report_lists_that_patients_changes(support):
    from medai_core.report.pdf import build_pdf
    from medai_core.workspaces.records.report import record_report

    model, spec = support
    t = load_records(_csv(_with(_good(3), glucose=(1, "0"), alb=(2, "29"))))
    s = R.score(model, spec, t)
    rep = record_report(t, 1, spec, s)
    assert rep.data_changes == (DataChange(2, "glucose", "", "0", SET_MISSING, "outside the plausible range 5-2,000 mg/dL"),)
    assert record_report(t, 0, spec, s).data_changes == ()
    import io

    from pypdf import PdfReader

    text = " ".join(" ".join(pg.extract_text() for pg in PdfReader(io.BytesIO(build_pdf(rep))).pages).split())
    assert "What we changed in your data" in text and "glucose" in text


def test_unscored_row_has_no_report(support):
    from medai_core.workspaces.records.report import record_report

    model, spec = support
    t = load_records(_csv(_with(_good(3), id=(0, ""))))
    with pytest.raises(InputError, match="was not scored"):
        record_report(t, 0, spec, R.score(model, spec, t))
