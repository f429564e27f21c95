"""CSV exports: each parses back with pandas to the arrays the explanation holds, and carries no identifier."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from medai_core.errors import InputError
from medai_core.explain.base import Explanation
from medai_core.io.records import FEATURES, SCHEMA, load_records
from medai_core.workspaces.records.samples import synthetic_records
from medai_core.workspaces.notes.text import tokenize
from medai_core.workspaces.imaging.exports import image_attributions_csv
from medai_core.workspaces.notes.exports import note_attention_csv, note_attributions_csv
from medai_core.workspaces.records.exports import record_attention_csv, record_attributions_csv
from medai_core.workspaces.vitals.exports import series_attention_csv, series_attributions_csv, series_forecast_csv

RNG = np.random.default_rng(11)


def _read(data: bytes) -> pd.DataFrame:
    assert isinstance(data, bytes)
    return pd.read_csv(io.BytesIO(data))


def test_image_attributions_row_col_value():
    a = RNG.normal(size=(16, 12))
    df = _read(image_attributions_csv(Explanation("gradcam", "malignant", a)))
    assert list(df.columns) == ["row", "col", "attribution"] and len(df) == a.size
    back = np.zeros_like(a)
    back[df["row"], df["col"]] = df["attribution"]
    np.testing.assert_allclose(back, a, rtol=1e-9)
    with pytest.raises(InputError):
        image_attributions_csv(Explanation("gradcam", "x", np.zeros((2, 3, 4))))


@pytest.fixture(scope="module")
def record_table():
    df = synthetic_records(3)
    df.loc[1, "id"] = "ZZYZX-ID-42"
    df["patient_name"] = "Zzyzx^Planted"  # an extra column: never a model input, never exported
    return load_records(df)


def test_record_attributions_schema_order_without_id(record_table):
    a = RNG.normal(size=len(SCHEMA))
    values = record_table.frame.iloc[1].to_dict()
    data = record_attributions_csv(Explanation("shapley_sampling", "high risk", a), values)
    assert b"ZZYZX" not in data.upper() and b"Planted" not in data
    df = _read(data)
    assert list(df["feature"]) == list(FEATURES)
    np.testing.assert_allclose(df["attribution"], a, rtol=1e-9)
    assert df.loc[df["feature"] == "age", "value"].astype(float).item() == pytest.approx(values["age"])
    assert df.loc[df["feature"] == "sex", "value"].item() == values["sex"]


def test_record_attention_cls_rows_and_full_matrices(record_table):
    from medai_core.workspaces.records import pipeline as R
    from medai_core.models import load_model

    model = load_model("support_ftt")
    cls = R.attention(model, record_table, 1)  # (layers, heads, features)
    df = _read(record_attention_csv(cls))
    assert list(df.columns) == ["layer", "head", "query", "key", "weight"]
    assert len(df) == cls.size and set(df["query"]) == {"[CLS]"}
    back = df.pivot_table(index=["layer", "head"], columns="key", values="weight")[list(FEATURES)].to_numpy()
    np.testing.assert_allclose(back.reshape(cls.shape), cls, rtol=1e-8)
    full = np.stack([R.attention_matrix(model, record_table, 1, layer) for layer in range(cls.shape[0])])
    dfm = _read(record_attention_csv(full))
    assert len(dfm) == full.size and dfm["query"].iloc[0] == "[CLS]"
    np.testing.assert_allclose(dfm["weight"].to_numpy(), full.ravel(), rtol=1e-8)
    # the CLS row of the full matrices is the CLS attention
    sub = dfm[(dfm["query"] == "[CLS]") & (dfm["key"] != "[CLS]")]
    np.testing.assert_allclose(sub["weight"].to_numpy().reshape(cls.shape) / full[:, :, 0, 1:].sum(-1, keepdims=True),
                               cls / cls.sum(-1, keepdims=True), rtol=1e-6)


NOTE = "Pt seen 12/03. Knee-joint effusion; no fever.\nPlan: aspirate the knee."


def test_note_attributions_tokens_and_spans():
    toks = tokenize(NOTE)
    v = RNG.normal(size=len(toks))
    df = _read(note_attributions_csv(toks, v))
    assert list(df.columns) == ["token_index", "token", "word", "char_start", "char_end", "attribution"]
    assert len(df) == len(toks)
    assert all(NOTE[a:b] == t for a, b, t in zip(df["char_start"], df["char_end"], df["token"].astype(str)))
    assert df["word"].iloc[2] == "<num>" and str(df["token"].iloc[2]) == "12"
    np.testing.assert_allclose(df["attribution"], v, rtol=1e-9)
    with pytest.raises(InputError):
        note_attributions_csv(toks, v[:-1])


def test_note_attention_cls_row_per_layer_and_head():
    toks = tokenize(NOTE)
    att = RNG.random((2, 4, len(toks)))
    df = _read(note_attention_csv(toks, att))
    assert list(df.columns) == ["layer", "head", "query", "token_index", "token", "weight"]
    assert len(df) == att.size and set(df["query"]) == {"[CLS]"}
    np.testing.assert_allclose(df["weight"].to_numpy().reshape(att.shape), att, rtol=1e-9)
    assert list(df["token_index"][: len(toks)]) == list(range(len(toks)))


@pytest.fixture(scope="module")
def icu():
    from medai_core.io.vitals import load_series
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals.samples import synthetic_series_csv

    spec = get_spec("icu_gru")
    # 12 hours: shorter than the model's 24-step window, so padding is exercised
    csv = synthetic_series_csv("icu_gru", "Stable patient (synthetic)")
    df = pd.read_csv(io.BytesIO(csv))
    df = df[df["time"].str.slice(0, 2).astype(int) < 12]
    series = load_series(df.to_csv(index=False).encode(), spec.extra["series"])
    return load_model("icu_gru"), spec, series


def test_series_attributions_steps_signals_values(icu):
    model, spec, series = icu
    hist = spec.extra["history"]
    a = RNG.normal(size=(hist, len(series.signals)))
    df = _read(series_attributions_csv(Explanation("integrated_gradients", "0", a), series))
    assert list(df.columns) == ["step", "minutes", "signal", "value", "attribution"]
    assert len(df) == a.size
    np.testing.assert_allclose(df["attribution"].to_numpy().reshape(a.shape), a, rtol=1e-9)
    vals = df["value"].to_numpy().reshape(a.shape)
    pad = hist - series.n_steps
    assert pad > 0 and np.isnan(vals[:pad]).all() and np.isnan(df["minutes"].to_numpy().reshape(a.shape)[:pad]).all()
    np.testing.assert_allclose(vals[pad:], series.values, rtol=1e-9, equal_nan=True)
    assert df["step"].iloc[-1] == -1 and df["minutes"].iloc[-1] == (series.n_steps - 1) * series.step_minutes


def test_series_attention_and_forecast(icu):
    from medai_core.workspaces.vitals import pipeline as V

    model, spec, series = icu
    fc = V.forecast(model, spec, series)
    df = _read(series_attention_csv(fc))
    assert list(df.columns) == ["step", "minutes", "weight"] and len(df) == spec.extra["history"]
    np.testing.assert_allclose(df["weight"], fc.attention, rtol=1e-9)
    np.testing.assert_allclose(df["minutes"], fc.window_times, equal_nan=True)
    dff = _read(series_forecast_csv(fc))
    assert len(dff) == fc.quantiles.shape[0] * fc.quantiles.shape[1]
    np.testing.assert_allclose(dff[["p10", "p50", "p90"]].to_numpy().reshape(fc.quantiles.shape), fc.quantiles, rtol=1e-9)


def test_series_exports_never_write_real_timestamps():
    from medai_core.io.vitals import load_series
    from medai_core.models import get_spec
    from medai_core.workspaces.vitals.samples import synthetic_series_csv
    from medai_core.workspaces.vitals.pipeline import Forecast

    spec = get_spec("cgm_gru")
    series = load_series(synthetic_series_csv("cgm_gru", "After a meal (synthetic)"), spec.extra["series"])
    assert series.origin is not None  # the upload had real dates
    hist = spec.extra["history"]
    data = series_attributions_csv(Explanation("occlusion", "0", np.ones((hist, 1))), series)
    fc = Forecast(("Glucose",), np.ones((2, 1, 3)), np.array([240.0, 245.0]), np.ones(hist) / hist,
                  np.arange(hist) * 5.0, np.array([100.0]))
    for blob in (data, series_attention_csv(fc), series_forecast_csv(fc)):
        assert b"2024" not in blob
