"""The figures the pages show: fast paths (one go.Image, reference lines in one update, the forecast built from
dicts without validation) produce figures plotly accepts when it does validate, with every mark in place."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from medai_core.plots.image import display_side, image_figure, probability_figure
from medai_core.plots.marks import Marks, add_marks, axes, hline, hrect, vline


def validated(fig: go.Figure) -> go.Figure:
    """Plotly's full validation of a figure's JSON (raises on any unknown or ill-typed property)."""
    return go.Figure(fig.to_dict())


def test_axes_names_follow_make_subplots():
    assert axes(1) == ("x", "y") and axes(3) == ("x3", "y3") and axes(1, 2, cols=2) == ("x2", "y2")


def test_marks_are_added_in_one_update_and_validate():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, subplot_titles=("a", "b"))
    m = Marks()
    vline(m, 0.5, row=2, text="thr", position="top right", dash="dot", color="#e67e22", width=2)
    hline(m, 3.0, row=1, text="limit", color="#333")
    hrect(m, 1.0, 2.0, row=2, fillcolor="green", opacity=0.1, text="normal", position="bottom left")
    fig = validated(add_marks(fig, m))
    assert len(fig.layout.shapes) == 3
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "thr", "limit", "normal"]  # titles kept
    v = fig.layout.shapes[0]
    assert (v.xref, v.yref, v.x0, v.x1, v.line.dash) == ("x2", "y2 domain", 0.5, 0.5, "dot")


@pytest.mark.parametrize("shape", [(256, 256), (300, 200, 3), (2000, 1500)])
def test_image_figure_keeps_scan_coordinates_at_display_size(shape):
    import base64
    import io

    from PIL import Image

    img = np.random.default_rng(0).random(shape)
    fig = validated(image_figure(img, "Scan", zoom=1.0, width_hint=360))
    (trace,) = fig.data
    png = Image.open(io.BytesIO(base64.b64decode(trace.source.split(",", 1)[1])))
    h, w = shape[:2]
    assert max(png.size) <= max(display_side(360), max(h, w)) and max(png.size) == min(max(h, w), display_side(360))
    assert png.mode == ("RGB" if len(shape) == 3 else "L")  # grey scans stay one channel
    assert trace.dx == pytest.approx(w / png.size[0])  # axes in the scan's own pixels
    assert fig.layout.xaxis.range == (-0.5, w - 0.5) and fig.layout.yaxis.range == (h - 0.5, -0.5)
    zoomed = image_figure(img, zoom=4.0, width_hint=360)
    assert zoomed.layout.xaxis.range[1] - zoomed.layout.xaxis.range[0] == pytest.approx(w / 4)


def _decode(uri: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))), dtype=np.float64) / 255


@pytest.mark.parametrize("signed,mode,cmap", [(False, "absolute", "jet"), (True, "positive", "inferno"),
                                              (True, "absolute", "viridis")])
def test_map_figure_blends_in_the_browser_as_the_overlay_does(signed, mode, cmap):
    """The map travels as an RGBA layer over the scan at the trace's opacity: composited as a browser does, it
    gives ``explain.overlay``'s pixels (to 8-bit rounding), and the figure validates."""
    from medai_core.explain import normalise_map, overlay
    from medai_core.workspaces.imaging import heat_picture, map_figure, picture

    rng = np.random.default_rng(3)
    display = rng.random((200, 300))
    yy, xx = np.mgrid[:14, :14]
    attr = np.exp(-((yy - 5) ** 2 + (xx - 9) ** 2) / 8.0) - (0.3 if signed else 0)
    fig = validated(map_figure(display, attr, signed, mode, 0.6, cmap, "Grad-CAM", width_hint=360))
    scan, layer = fig.data
    assert layer.opacity == 0.6 and layer.dx == scan.dx and layer.x0 == scan.x0  # the same pixels, the same place
    base, rgba = _decode(scan.source), _decode(layer.source)
    a = 0.6 * rgba[..., 3:]
    seen = base[..., None] * (1 - a) + rgba[..., :3] * a
    want = overlay(display, normalise_map(attr, signed=signed, mode=mode), 0.6, cmap) / 255
    assert np.abs(seen - want).max() <= 3 / 255
    # built from pictures encoded before: the same figure
    side = display_side(360)
    again = map_figure(picture(display, side), heat_picture(attr, signed, mode, cmap, display.shape, side), signed, mode,
                       0.6, cmap, "Grad-CAM", width_hint=360)
    assert validated(again).to_json() == fig.to_json()
    # a large scan: both layers shrink to the display size and keep the scan's coordinates
    big = map_figure(rng.random((1500, 1000)), attr, signed, mode, 0.5, cmap, "", width_hint=360)
    assert big.data[0].dx == big.data[1].dx == pytest.approx(1500 / display_side(360))
    assert big.layout.xaxis.range == (-0.5, 999.5)


def test_probability_figure_marks_the_threshold():
    from medai_core.workspaces.imaging import ImagePrediction

    pred = ImagePrediction("m", ("normal", "abnormal"), {"normal": 0.3, "abnormal": 0.7}, "abnormal", "abnormal", 0.6,
                           False, 1.0, 5.0, 0.01)
    fig = validated(probability_figure(pred))
    assert fig.layout.shapes[0].x0 == 0.6 and "threshold 0.60" in fig.layout.annotations[0].text


def test_forecast_figure_is_valid_and_complete():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces import vitals as W

    spec, model = get_spec("icu_gru"), load_model("icu_gru")
    sspec = spec.extra["series"]
    series = W.load_series(W.synthetic_series_csv("icu_gru", next(iter(W.SYNTHETIC_SERIES["icu_gru"]))), sspec)
    fc = W.forecast(model, spec, series)
    fig = validated(W.forecast_figure(series, fc, sspec.signals, 24))
    n = len(fc.signals)
    assert len(fig.data) == 3 * n + 1 and fig.data[-1].type == "heatmap"
    assert {t.xaxis for t in fig.data} == {axes(r)[0] for r in range(1, n + 2)}
    assert sum(s.type == "line" and s.line.dash == "dash" for s in fig.layout.shapes) == n + 1  # forecast start, every row
    assert sum(s.type == "rect" for s in fig.layout.shapes) == sum(
        1 for s in sspec.signals if s.name in fc.signals and s.normal and s.normal[1] > s.normal[0])
    titles = [a.text for a in fig.layout.annotations]
    assert titles[-1] == "Attention over past steps" and len(titles) == n + 1
    assert fig.layout[f"xaxis{n + 1}"].title.text


def test_reliability_figure_is_valid_with_case_and_threshold():
    from medai_core.plots.trust import reliability_figure
    from medai_core.trust.calibration import reliability_curve

    rng = np.random.default_rng(0)
    p = rng.random(400)
    curve = reliability_curve(p, rng.random(400) < p)
    fig = validated(reliability_figure(curve, 0.31, 0.6, "Reliability", "predicted", "observed"))
    assert [t.type for t in fig.data] == ["scatter", "scatter", "bar"] and fig.data[2].yaxis == "y2"
    assert len(fig.layout.shapes) == 4  # threshold and case, each through both panels
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0] == "threshold 0.60" and texts[1].startswith("this case 0.31")
    assert fig.layout.xaxis2.title.text == "predicted" and fig.layout.yaxis.title.text == "observed"
    assert fig.layout.title.text == "Reliability"
