"""The sepsis early warning's case report: the risk over the stay, the alarms, and what drove the chosen hour."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

from medai_core.plots import static as F
from medai_core.report.case import (CaseReport, ReportFigure, ReportTable, explanation_fields, model_summary,
                                    report_time, software_versions)

if TYPE_CHECKING:
    from medai_core.explain.base import Explanation
    from medai_core.io.sepsis import SepsisRecord
    from medai_core.models.spec import ModelSpec


class ScoreLike(Protocol):
    """What the report reads of ``sepsis.SepsisScore``."""

    risk: np.ndarray
    alarm: np.ndarray
    threshold: float


def sepsis_report(record: SepsisRecord, spec: ModelSpec, score: ScoreLike, hour: int, exp: Explanation | None = None,
                  *, intended_use: str = "", sanity: Mapping[str, Any] | None = None,
                  created: datetime | None = None) -> CaseReport:
    """The case: the hourly risk and alarms, the chosen hour's attributions, the alarm hours as a table."""
    variables = spec.extra["variables"]
    measured = [s.label for j, s in enumerate(variables) if np.isfinite(record.values[:, j]).any()]
    alarms = np.flatnonzero(score.alarm)
    summary = {"Hours": f"{record.n_hours} rows (ICU hours {record.hours[0]:g}-{record.hours[-1]:g})",
               "Variables measured": ", ".join(measured) or "none",
               "Alarm threshold": f"{score.threshold:.1%} (maximised the challenge utility on validation)",
               "Explained hour": f"ICU hour {record.hours[hour]:g}, risk {score.risk[hour]:.1%}"}
    figs = [ReportFigure("Risk over the stay", F.sepsis_risk_png(record.hours, score.risk, score.threshold, score.alarm),
                         "Risk that sepsis will be recognised within 6 hours, at every hour from the rows up to it only.")]
    if exp is not None:
        a = np.asarray(exp.attributions)
        top = np.argsort(-np.abs(a).sum(0))[:15]
        figs.append(ReportFigure(f"What moved the risk at hour {record.hours[hour]:g}", F.heatmap_png(
            a[:, top].T, [variables[j].label for j in top], [f"{h:g}" for h in record.hours[: len(a)]],
            "Contribution of each past value to the risk logit", xlabel="ICU hour", colorbar="logit"),
            "Red raised the risk, blue lowered it, against every value at its training mean (measurement pattern kept)."))
    rows = tuple((f"{record.hours[i]:g}", f"{score.risk[i]:.1%}") for i in alarms[:200])
    tables = (ReportTable("Hours where the alarm fired", ("ICU hour", "risk"), rows or (("none", "-"),)),)
    head = (f"Alarm from ICU hour {record.hours[alarms[0]]:g} ({len(alarms)} alarming hour(s))" if len(alarms)
            else f"No alarm in {record.n_hours} hours (highest risk {score.risk.max():.1%})")
    return CaseReport(
        workspace="Vital signs: sepsis early warning", model=spec.name, model_summary=model_summary(spec),
        intended_use=intended_use, created=report_time(created), software=software_versions(), input_summary=summary,
        prediction=head, explanation_reading="Attributions are on the risk logit of the chosen hour.",
        sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs), tables=tables,
        notes=tuple(record.notices), identifiers=None, data_changes=record.changes, **explanation_fields(exp, "sepsis"))
