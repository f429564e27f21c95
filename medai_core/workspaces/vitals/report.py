"""The Vital-signs case report: the forecast with its intervals, attention and attributions."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from medai_core.plots import static as F
from medai_core.report.case import (INTENDED_USE, CaseReport, ReportFigure, ReportTable, elapsed_text,
                                    explanation_fields, model_summary,
                                    report_time, software_versions)

if TYPE_CHECKING:
    from medai_core.explain.base import Explanation
    from medai_core.models.spec import ModelSpec
    from medai_core.io.vitals import VitalSeries
    from medai_core.workspaces.vitals.pipeline import Forecast


def series_report(series: VitalSeries, spec: ModelSpec, fc: Forecast, exp: Explanation | None = None, *,
                  signal: str | None = None, step_ahead: int | None = None, show_steps: int = 24,
                  sanity: Mapping[str, Any] | None = None, created: datetime | None = None) -> CaseReport:
    """The vital-signs workspace's case: the forecast with its interval, attention and attributions.

    Args:
        series, spec, fc: the series, the model's spec and ``vitals.forecast``.
        exp: ``vitals.explain_forecast`` for ``signal`` at ``step_ahead`` (None: no explanation section).
        show_steps: history steps drawn before the forecast.
    """
    from medai_core.workspaces.vitals.pipeline import threshold_warnings

    signals = spec.extra["series"].signals
    by_name = {s.name: s for s in signals}
    step = series.step_minutes
    summary = {"Steps": f"{series.n_steps} of {step} minutes ({series.n_steps * step / 60:g} h)",
               "Signals recorded": ", ".join(s for s in series.signals if np.isfinite(series.column(s)).any()) or "none",
               "Model reads": f"the last {spec.extra['history']} steps",
               "Time axis": "hours since the record began"}
    for k, v in series.static.items():
        summary[k] = f"{v:g}"
    figs = [ReportFigure("Forecast", F.forecast_png(series, fc, signals, show_steps),
                         f"Median (line) and 10-90% interval (band) of each signal's mean per {step}-minute step; green "
                         "band: normal range; dotted orange: clinical thresholds; dashed grey: forecast start. "
                         "Bottom: the model's attention over the steps it read.")]
    reading = ""
    if exp is not None:
        keep = ~np.isnan(fc.window_times)
        cols = [elapsed_text(t) for t in fc.window_times[keep]]
        label = by_name[signal].label if signal in by_name else (signal or "the forecast")
        figs.append(ReportFigure("What drove the forecast", F.heatmap_png(
            np.asarray(exp.attributions)[keep].T, [by_name[s].label if s in by_name else s for s in series.signals], cols,
            f"Contribution of each past value to the median {label} at +{step_ahead or '?'} step(s)",
            xlabel="time since the record began (h:mm)", colorbar="effect"),
            "Red raised the forecast, blue lowered it, measured against every value at its training mean."))
        reading = "Attributions are in the forecast signal's own units."
    rows = []
    for i, s in enumerate(fc.signals):
        for h in range(fc.quantiles.shape[0]):
            p10, p50, p90 = fc.quantiles[h, i]
            rows.append((by_name[s].label if s in by_name else s, f"+{h + 1}", elapsed_text(fc.times[h]),
                         f"{p10:.1f}", f"{p50:.1f}", f"{p90:.1f}"))
    tables = (ReportTable("Forecast (10th, 50th and 90th percentiles)", ("Signal", "Step", "Time (h:mm)", "p10", "p50", "p90"),
                          tuple(rows)),)
    warn = threshold_warnings(fc, signals)
    horizon = fc.quantiles.shape[0]
    head = (f"Forecast of {', '.join(by_name[s].label if s in by_name else s for s in fc.signals)} for the next "
            f"{horizon} step(s) ({horizon * step} min)")
    head += f"; {len(warn)} threshold warning(s)" if warn else "; no clinical threshold crossed"
    ids = {"Series start": str(series.origin)} if series.origin is not None else None
    explanation = explanation_fields(exp, "series")
    if exp is not None and signal:
        explanation["explanation_params"] = {"signal": signal, "step ahead": step_ahead,
                                             **{k: v for k, v in explanation["explanation_params"].items() if k != "target"}}
    return CaseReport(
        workspace="Vital signs", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=report_time(created), software=software_versions(), input_summary=summary, prediction=head,
        explanation_reading=reading, sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs),
        tables=tables, notes=tuple(warn) + tuple(series.notices), identifiers=ids, data_changes=series.changes,
        **explanation)
