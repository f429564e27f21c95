"""Vital-sign series: resampling and masks, the validation table, the quantile loss, a forecaster that
must learn a noisy sine better than persistence, attention and attribution shapes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medai_core.workspaces.vitals import pipeline as V
from medai_core.errors import EmptyInput, TooLarge, UnsupportedFormat
from medai_core.explain import EXPLAINERS
from medai_core.io.vitals import SeriesError, SeriesSpec, Signal, load_series, to_series
from medai_core.models.forecaster import ICU_SERIES, QuantileForecaster, quantile_loss
from medai_core.workspaces.vitals.samples import synthetic_icu_case

TINY = SeriesSpec((Signal("HR", "Heart rate", "/min", ("HR",), (1, 300), (60, 100), (40, 130)),
                   Signal("MAP", "Mean arterial pressure", "mmHg", ("MAP", "NIMAP"), (1, 300))),
                  static=("Age",), step_minutes=60, min_history_steps=2)


def _long(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["time", "parameter", "value"]).astype(str)


def test_hourly_means_masks_and_source_priority():
    s = to_series(_long([("00:00", "Age", 70), ("00:10", "HR", 80), ("00:40", "HR", 90), ("00:20", "NIMAP", 70),
                         ("00:30", "MAP", 75), ("02:05", "HR", 100), ("02:10", "NIMAP", 60), ("02:15", "HR", -1)]), TINY)
    assert s.static == {"Age": 70.0} and s.n_steps == 3 and s.step_minutes == 60
    np.testing.assert_allclose(s.column("HR"), [85, np.nan, 100])  # mean within the hour; -1 is missing
    np.testing.assert_allclose(s.column("MAP"), [75, np.nan, 60])  # invasive wins, else non-invasive
    np.testing.assert_array_equal(s.times, [0, 60, 120])


def test_locf_and_window_masks():
    vals = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 3.0]])
    filled, obs = V.locf(vals)
    np.testing.assert_allclose(filled, [[np.nan, 1], [2, 1], [2, 1], [4, 3]])
    assert obs.sum() == 4
    x, m, pad = V.window_arrays(vals, 3, 5, np.zeros(2), np.ones(2))
    assert pad.tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(x[2:], [[0, 1], [2, 1], [2, 1]])  # before the first value: the mean (0)
    np.testing.assert_allclose(m[2:], [[0, 1], [1, 0], [0, 0]])


def test_wide_and_long_give_the_same_series():
    wide = b"timestamp,HR,MAP\n2024-01-01 08:00,80,70\n2024-01-01 09:00,,72\n2024-01-01 10:30,95,\n"
    long = (b"time,parameter,value\n2024-01-01 08:00,HR,80\n2024-01-01 08:00,MAP,70\n2024-01-01 09:00,MAP,72\n"
            b"2024-01-01 10:30,HR,95\n")
    a, b = load_series(wide, TINY), load_series(long, TINY)
    np.testing.assert_allclose(a.values, b.values)
    assert a.origin == pd.Timestamp("2024-01-01 08:00")


BAD = [
    (b"", EmptyInput, "empty"),
    (b"\x00\x01\x02", UnsupportedFormat, "binary"),
    (b"when,what\n1,2\n", UnsupportedFormat, "time,parameter,value"),
    (b"time,parameter,value\n00:00,Foo,1\n01:00,Bar,2\n", SeriesError, "No values of any signal"),
    (b"time,parameter,value\nyesterday,HR,80\n01:00,HR,80\n", SeriesError, "Unparseable times in rows 2"),
    (b"time,parameter,value\n00:00,HR,fast\n01:00,HR,80\n", SeriesError, "not numbers in rows 2"),
    (b"time,parameter,value\n00:00,HR,80\n01:00,HR,900\n", SeriesError, r"Heart rate \(HR\) outside 1-300"),
    (b"time,parameter,value\n00:00,HR,80\n", SeriesError, "Too little history"),
    (b"timestamp,HR\n2024-01-01 08:00,80\n2024-01-01 08:00,81\n", SeriesError, "Duplicated timestamps in rows 2, 3"),
    (b"timestamp,HR\n2024-01-01 09:00,80\n2024-01-01 08:00,81\n", SeriesError, "go backwards at rows 3"),
    (b"time,parameter,value\n00:00,HR,\n01:00,HR,\n", SeriesError, "No values"),
]


@pytest.mark.parametrize("data,err,match", BAD)
def test_validation_table(data, err, match):
    with pytest.raises(err, match=match):
        load_series(data, TINY)


def test_unknown_and_empty_signals_are_notices():
    s = load_series(b"time,parameter,value\n00:00,HR,80\n01:00,HR,82\n01:00,Lactate,2\n", TINY)
    text = " ".join(s.notices)
    assert "Lactate" in text and "Mean arterial pressure" in text


def test_size_limit():
    rows = "\n".join(f"{m},HR,80" for m in range(0, 60 * 24 * 61, 60 * 12))
    with pytest.raises(TooLarge):
        load_series(f"time,parameter,value\n{rows}\n".encode(), SeriesSpec(TINY.signals, (), 1, 2))


def test_quantile_loss_is_the_pinball_loss():
    pred = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([2.5])
    # q=0.1: 0.1*1.5; q=0.5: 0.5*0.5; q=0.9: 0.1*0.5 (over-forecast by 0.5 costs 1-0.9)
    want = (0.1 * 1.5 + 0.5 * 0.5 + (1 - 0.9) * 0.5) / 3
    assert float(quantile_loss(pred, target, torch.ones(1))) == pytest.approx(want)
    assert float(quantile_loss(pred, target, torch.zeros(1))) == 0.0  # unobserved targets cost nothing


def _sine_windows(n: int, rng: np.random.Generator, L: int = 24, H: int = 6):
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(L + H)
    clean = np.sin(2 * np.pi * t[None] / 12 + phase[:, None])
    y = clean + rng.normal(0, 0.1, clean.shape)
    x = torch.tensor(y[:, :L, None], dtype=torch.float32)
    return x, torch.ones_like(x), torch.zeros(n, L, dtype=torch.bool), torch.zeros(n, 0), torch.tensor(y[:, L:, None], dtype=torch.float32)


def test_forecaster_learns_a_noisy_sine_better_than_persistence():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = QuantileForecaster(1, 1, 0, 6, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        x, m, pad, st, y = _sine_windows(128, rng)
        loss = quantile_loss(model(x, m, pad, st)[..., 0, :], y[..., 0], torch.ones_like(y[..., 0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, m, pad, st, y = _sine_windows(512, rng)
    with torch.no_grad():
        q, w = model.forward_with_attention(x, m, pad, st)
    mae_model = (q[..., 0, 1] - y[..., 0]).abs().mean()
    mae_persist = (x[:, -1:, 0] - y[..., 0]).abs().mean()
    assert mae_model < 0.5 * mae_persist, (float(mae_model), float(mae_persist))
    assert (q[..., 0] <= q[..., 1]).all() and (q[..., 1] <= q[..., 2]).all()  # quantiles never cross
    cover = ((y[..., 0] >= q[..., 0, 0]) & (y[..., 0] <= q[..., 0, 2])).float().mean()
    assert 0.6 < float(cover) < 0.97
    torch.testing.assert_close(w.sum(-1), torch.ones(512))


def test_attention_ignores_padding():
    model = QuantileForecaster(2, 1, 0, 3).eval()
    x = torch.randn(2, 10, 2)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[:, :4] = True
    with torch.no_grad():
        _, w = model.forward_with_attention(x, torch.ones_like(x), pad, torch.zeros(2, 0))
    assert (w[:, :4] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2))


@pytest.fixture(scope="module")
def icu():
    from medai_core.models import get_spec, load_model

    return load_model("icu_gru"), get_spec("icu_gru")


def test_forecast_contract(icu):
    model, spec = icu
    s = to_series(synthetic_icu_case("deteriorating").astype(str), ICU_SERIES)
    fc = V.forecast(model, spec, s, horizon=4)
    assert fc.quantiles.shape == (4, 5, 3) and np.isfinite(fc.quantiles).all()
    assert (np.diff(fc.quantiles, axis=-1) >= 0).all()
    assert fc.attention.shape == (24,) and fc.attention.sum() == pytest.approx(1.0, abs=1e-5)
    js = fc.to_json()
    assert set(js) == {"HR", "MAP", "SysABP", "RespRate", "Temp"}
    assert js["HR"]["time"][0] == "24:00" and len(js["HR"]["p50"]) == 4


@pytest.mark.parametrize("method", EXPLAINERS.names(modalities="series"))
def test_every_series_explainer(icu, method):
    model, spec = icu
    s = to_series(synthetic_icu_case("stable").astype(str), ICU_SERIES)
    exp = V.explain_forecast(model, spec, s, "MAP", 3, method)
    assert exp.attributions.shape == (24, len(ICU_SERIES.signals)) and np.isfinite(exp.attributions).all()
    if method == "integrated_gradients":
        assert exp.diagnostics["relative_delta"] < 0.02


def test_series_report_lists_the_readings_set_aside():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals import series_report

    spec = get_spec("icu_gru")
    df = synthetic_icu_case("stable").astype(object)
    df.loc[df.index[df["parameter"] == "Temp"][2], "value"] = "-17.8"
    series = load_series(df.to_csv(index=False).encode(), spec.extra["series"])
    assert [(c.field, c.value) for c in series.changes] == [("Temp", "-17.8")]
    rep = series_report(series, spec, V.forecast(load_model("icu_gru"), spec, series))
    assert rep.data_changes == series.changes
