"""Static figures (PNG bytes) for case reports, drawn with matplotlib's object API on the Agg canvas.

The pages draw Plotly figures; exporting those to PNG needs kaleido and a headless browser, so reports
draw their own: the scan with its heatmap overlay, probability and attribution bars, a forecast with
its 10-90% band and the attention under it, and a generic heatmap. No pyplot (no global figure state:
safe from several sessions' threads at once); nothing is written to disk.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Sequence

import numpy as np

from medai_core.explain.overlay import normalise_map, overlay
from medai_core.trust.randomisation import RANDOMISATION_PASS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from medai_core.io.series_spec import Signal
    from medai_core.io.vitals import VitalSeries

    from medai_core.plots.series import ForecastLike
    from medai_core.trust.checks import TrustReport

DPI = 150
RED, GREEN, BLUE, GREY, DARK = "#c0392b", "#27ae60", "#2e86c1", "#95a5a6", "#34495e"  # the pages' colours


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def scan_overlay_png(display: np.ndarray, overlay_rgb: np.ndarray | None, titles: tuple[str, str] = ("Scan", "Explanation"),
                     max_side: int = 768) -> bytes:
    """The scan and its heatmap overlay side by side (or the scan alone), with titles.

    Args:
        display: (H, W) or (H, W, 3) display image in [0, 1] (``io.render``).
        overlay_rgb: (H, W, 3) uint8 from ``explain.overlay`` or None.
        max_side: images are downsampled to at most this many pixels per side.
    """
    panels = [(display, titles[0])] + ([(overlay_rgb, titles[1])] if overlay_rgb is not None else [])
    h, w = np.asarray(display).shape[:2]
    aspect = h / max(w, 1)
    width = 3.6 * len(panels)
    fig = _figure(width, 3.6 * aspect + 0.45)
    for i, (img, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        img = np.asarray(img)
        step = max(1, int(np.ceil(max(img.shape[:2]) / max_side)))
        img = img[::step, ::step]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0 if img.ndim == 2 else None,
                  vmax=1 if img.ndim == 2 else None, interpolation="antialiased")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return _png(fig)


def probability_bar_png(probabilities: dict[str, float], title: str = "Calibrated probabilities",
                        highlight: str | None = None, threshold: tuple[str, float] | None = None,
                        muted: bool = False) -> bytes:
    """Horizontal bars of class probabilities (in %), the predicted class highlighted.

    Args:
        threshold: (label, value) draws the decision threshold on that label's bar.
        muted: grey everything (an out-of-distribution input: the prediction must not be used).
    """
    labels = list(probabilities)
    vals = np.array([probabilities[k] for k in labels], float) * 100
    fig = _figure(6.0, 0.45 * len(labels) + 0.9)
    ax = fig.add_subplot()
    colors = [GREY if muted or k != highlight else RED for k in labels]
    y = np.arange(len(labels))[::-1]
    ax.barh(y, vals, color=colors, height=0.6)
    for yi, v in zip(y, vals):
        ax.text(min(v + 1, 92), yi, f"{v:.1f}%", va="center", fontsize=8)
    if threshold is not None and threshold[0] in labels:
        yi = y[labels.index(threshold[0])]
        ax.plot([threshold[1] * 100] * 2, [yi - 0.4, yi + 0.4], color=DARK, lw=1.5, ls="--")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("probability (%)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return _png(fig)


def attribution_bar_png(items: Sequence[tuple[str, float]], title: str, xlabel: str = "attribution",
                        signed: bool = True) -> bytes:
    """Horizontal bars of (name, value), in the order given (top first): red raises the prediction,
    green lowers it, as on the pages (blue for unsigned weights such as attention)."""
    items = list(items)
    fig = _figure(6.0, 0.26 * max(len(items), 1) + 1.0)
    ax = fig.add_subplot()
    if items:
        names = [n if len(n) <= 48 else n[:47] + "…" for n, _ in items]
        vals = np.array([v for _, v in items], float)
        y = np.arange(len(items))[::-1]
        ax.barh(y, vals, color=[(RED if v > 0 else GREEN) if signed else BLUE for v in vals], height=0.7)
        ax.set_yticks(y, names, fontsize=7)
        ax.axvline(0, color=DARK, lw=0.6)
    else:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return _png(fig)


def heatmap_png(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
                signed: bool = True, xlabel: str = "", ylabel: str = "", colorbar: str = "",
                max_col_labels: int = 16) -> bytes:
    """A generic heatmap: diverging (red +, blue -, centred on 0) for signed values, sequential otherwise."""
    m = np.nan_to_num(np.asarray(matrix, dtype=float))
    n_r, n_c = m.shape
    fig = _figure(min(max(4.0, 0.28 * n_c + 2.2), 7.2), min(max(1.6, 0.3 * n_r + 1.2), 8.5))
    ax = fig.add_subplot()
    if signed:
        lim = float(np.abs(m).max()) or 1.0
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    else:
        im = ax.imshow(m, cmap="Blues", aspect="auto", interpolation="nearest")
    ax.set_yticks(range(n_r), list(row_labels), fontsize=7)
    step = max(1, int(np.ceil(n_c / max_col_labels)))
    ax.set_xticks(range(0, n_c, step), [str(c) for c in list(col_labels)[::step]], fontsize=7,
                  rotation=90 if max(len(str(c)) for c in col_labels) > 3 else 0)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.ax.tick_params(labelsize=7)
    if colorbar:
        cb.set_label(colorbar, fontsize=7)
    return _png(fig)


def forecast_png(series: VitalSeries, fc: ForecastLike, signals: Sequence[Signal], show_steps: int = 24) -> bytes:
    """One panel per forecast signal: the recorded history, the median forecast and its 10-90% band,
    the normal range and alarm thresholds; under them the model's attention over the steps it read.
    The time axis is hours since the record began (never the upload's real timestamps)."""
    by_name = {s.name: s for s in signals}
    n = len(fc.signals)
    fig = _figure(7.0, 1.55 * n + 1.3)
    axes = fig.subplots(n + 1, 1, sharex=True, height_ratios=[1.0] * n + [0.35])
    start = max(0, series.n_steps - show_steps)
    hx = np.asarray(series.times[start:], float) / 60.0
    fx = np.asarray(fc.times, float) / 60.0
    for i, name in enumerate(fc.signals):
        s, ax = by_name[name], axes[i]
        y = series.column(name)[start:]
        ok = ~np.isnan(y)
        ax.plot(hx[ok], y[ok], "-o", color=DARK, ms=2.5, lw=1.2, label="recorded")
        q = fc.quantiles[:, i]
        ax.fill_between(fx, q[:, 0], q[:, 2], color=RED, alpha=0.18, lw=0, label="10-90% interval")
        ax.plot(fx, q[:, 1], "-o", color=RED, ms=3, lw=1.6, label="median forecast")
        if s.normal and s.normal[1] > s.normal[0]:
            ax.axhspan(s.normal[0], s.normal[1], color="#27ae60", alpha=0.08, lw=0)
        for thr in (s.alarm or ()):
            if thr is not None:
                ax.axhline(thr, color="#e67e22", ls=":", lw=1)
        ax.axvline(fx[0], color=GREY, ls="--", lw=1)
        ax.set_ylabel(f"{s.label}\n({s.unit})" if s.unit else s.label, fontsize=7)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left", ncols=3, frameon=False)
    ax = axes[-1]
    keep = ~np.isnan(fc.window_times)
    wx = fc.window_times[keep] / 60.0
    step_h = series.step_minutes / 60.0
    ax.bar(wx + step_h / 2, fc.attention[keep], width=step_h * 0.9, color=BLUE)
    ax.set_ylabel("attention", fontsize=7)
    ax.set_xlabel("hours since the record began", fontsize=8)
    ax.tick_params(labelsize=7)
    return _png(fig)


def report_png(report: TrustReport, display: np.ndarray | None = None, signed: bool = True) -> bytes:
    """A PNG figure: the trained and the fully randomised model's maps side by side (over ``display``, a
    [0, 1] image, for 2-D maps; bars for 1-D maps), the rank correlation per cascade stage, and the
    deletion and insertion curves against random orders. Matplotlib's Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    c, f = report.cascade, report.faithfulness
    fig = Figure(figsize=(20, 4.4), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 5)
    for ax, a, title in ((axes[0], c.trained, f"Trained model: {report.method}"),
                         (axes[1], c.randomised, f"All layers randomised (rank corr {c.rank_correlation:+.2f})")):
        if a.ndim == 2:
            heat = normalise_map(a, signed=signed)
            if display is not None:
                ax.imshow(overlay(display, heat))
            else:
                ax.imshow(heat, cmap="inferno", aspect="auto", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            v = np.ravel(a)
            ax.bar(np.arange(v.size), v, color=np.where(v >= 0, "#c0392b", "#27ae60"))
            ax.set_xlabel("feature / word")
        ax.set_title(title, fontsize=10)
    ax = axes[2]
    ks = np.arange(len(c.stages) + 1)
    ax.plot(ks, [1.0] + [s.rank_correlation for s in c.stages], "o-", label="rank correlation")
    ax.plot(ks, [1.0] + [s.abs_rank_correlation for s in c.stages], "s--", label="of |attributions|")
    ax.axhspan(-RANDOMISATION_PASS, RANDOMISATION_PASS, color="#27ae60", alpha=0.12)
    ax.set_xticks(ks, ["trained"] + [s.group for s in c.stages], rotation=45, ha="right", fontsize=7)
    ax.set_ylim(-1.05, 1.05)
    ax.set_title(f"Cascading randomisation: {c.verdict}", fontsize=10)
    ax.legend(fontsize=7)
    for ax, curve, rand, auc, auc_r, sd, name in (
            (axes[3], f.deletion, f.deletion_random, f.deletion_auc, f.deletion_auc_random, f.deletion_auc_random_std,
             "Deletion"),
            (axes[4], f.insertion, f.insertion_random, f.insertion_auc, f.insertion_auc_random,
             f.insertion_auc_random_std, "Insertion")):
        ax.plot(f.fractions, curve, "-", color="#c0392b", label=f"map order, area {auc:.3g}")
        ax.plot(f.fractions, rand, "--", color="grey", label=f"random order, area {auc_r:.3g} ± {sd:.2g}")
        ax.set_xlabel(f"fraction of {f.unit} {'removed' if name == 'Deletion' else 'restored'}")
        ax.set_ylabel(f.score, fontsize=8)
        ax.set_title(f"{name} ({f.verdict})", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def sepsis_risk_png(hours: np.ndarray, risk: np.ndarray, threshold: float, alarm: np.ndarray) -> bytes:
    """The hourly sepsis risk with the alarm threshold (dashed) and the alarming hours (red triangles)."""
    fig = _figure(7.0, 2.6)
    ax = fig.add_subplot()
    ax.plot(hours, risk, color="#2c3e50", lw=1.8, label="risk of sepsis within 6 h")
    al = np.asarray(alarm, bool)
    if al.any():
        ax.plot(np.asarray(hours)[al], np.asarray(risk)[al], "^", color="#c0392b", ms=5, label="alarm fires")
    ax.axhline(threshold, color="#c0392b", ls="--", lw=1, label=f"threshold {threshold:.1%}")
    ax.set_xlabel("hours since ICU admission")
    ax.set_ylabel("risk")
    ax.set_ylim(0, min(1.0, max(float(np.max(risk)), threshold) * 1.2))
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)
