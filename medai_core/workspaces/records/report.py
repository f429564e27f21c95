"""The Records workspace's case report: one record's risk, its feature attributions and attention."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from medai_core.plots import static as F
from medai_core.report.case import (INTENDED_USE, CaseReport, ReportFigure, ReportTable, explanation_fields, model_summary,
                                    report_time, software_versions)

if TYPE_CHECKING:
    from medai_core.explain.base import Explanation
    from medai_core.models.spec import ModelSpec
    from medai_core.io.records import RecordTable
    from medai_core.workspaces.records.pipeline import RiskTable


def record_report(table: RecordTable, row: int, spec: ModelSpec, scores: RiskTable, exp: Explanation | None = None, *,
                  attention: np.ndarray | None = None, sanity: Mapping[str, Any] | None = None, top: int = 15,
                  created: datetime | None = None) -> CaseReport:
    """The records workspace's case: one record's risk, its feature attributions and attention.

    Args:
        table, row: the validated table and the record's index in it.
        spec, scores: the model's spec and ``records.score`` on ``table``.
        exp: ``records.explain_record`` for ``row`` (None: no explanation section).
        attention: ``records.attention`` for ``row`` (layers, heads, features), or None.
        sanity: the sanity check's results, if run.
        top: features shown in the attribution chart.

    The report's ``data_changes`` are that record's values set to missing before scoring.

    Raises:
        InputError: ``row`` is not in the table or was not scored.
    """
    from medai_core.io.records import EXCLUDED, FEATURES, FIELDS, ID_COLUMN, SCHEMA
    from medai_core.workspaces.records.pipeline import attribution_frame, require_scored

    require_scored(table, row)  # a row without a risk has no case to report
    risk, label, thr = float(scores.risk[row]), scores.labels[row], float(scores.threshold)
    risk_of = spec.extra.get("risk_of", spec.positive_label)
    neg, pos = spec.labels
    rec = table.frame.iloc[row]
    missing = [f.label for f in SCHEMA if rec[f.name] is None or (isinstance(rec[f.name], float) and np.isnan(rec[f.name]))]
    summary = {"Record": f"row {row + 1} of {len(table)}", "Features": f"{len(SCHEMA)} (schema of {spec.name})",
               "Missing features": ", ".join(missing) if missing else "none"}
    figs, tables, reading = [], [], ""
    figs.append(ReportFigure("Risk", F.probability_bar_png({neg: 1 - risk, pos: risk}, f"Risk of {risk_of}",
                                                           highlight=pos if label == pos else None, threshold=(pos, thr)),
                             f"Dashed line: the decision threshold ({thr:.0%})."))
    if exp is not None:
        frame = attribution_frame(exp, table, row)
        figs.append(ReportFigure(
            "Feature contributions", F.attribution_bar_png(
                [(s, a * 100) for s, a in zip(frame["shown"].head(top), frame["attribution"].head(top))],
                f"Largest contributions to the risk of {risk_of}", "contribution (percentage points of risk)"),
            "Red raised the risk, green lowered it, each compared with the reference patient."))
        tables.append(ReportTable("The record and each feature's contribution",
                                  ("Feature", "Value", "Contribution (pp)"),
                                  tuple((FIELDS[f].label, _value_text(FIELDS[f], rec[f]), f"{float(a) * 100:+.2f}")
                                        for f, a in zip(FEATURES, exp.attributions))))
        reading = ("Contributions are in percentage points of risk, measured against a reference patient (every "
                   "feature at its training median or most common value); they add up to the difference between "
                   "this record's risk and the reference's.")
    else:
        tables.append(ReportTable("The record", ("Feature", "Value"),
                                  tuple((f.label, _value_text(f, rec[f.name])) for f in SCHEMA)))
    if attention is not None:
        att = np.asarray(attention)
        figs.append(ReportFigure("Attention", F.heatmap_png(
            att.mean(1), [f"layer {i + 1}" for i in range(att.shape[0])], list(FEATURES),
            "CLS-to-feature attention (mean of heads)", signed=False, colorbar="weight"),
            "Where the classifier token looked in each layer; not a direction of evidence."))
    ids: dict[str, str] = {}
    src = table.source
    if ID_COLUMN in src.columns:
        ids["Record ID"] = str(table.ids[row])
    for col in src.columns:
        if col not in FIELDS and col != ID_COLUMN and col not in EXCLUDED:
            val = src[col].iloc[row]
            if val is not None and str(val).strip() and str(val) != "nan":
                ids[f"Column '{col}'"] = str(val)
    return CaseReport(
        workspace="Records", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=report_time(created), software=software_versions(), input_summary=summary,
        prediction=f"{label}: risk of {risk_of} {risk:.0%} (calibrated; '{pos}' from {thr:.0%})",
        probabilities={neg: 1 - risk, pos: risk}, explanation_reading=reading,
        sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs), tables=tuple(tables),
        notes=tuple(table.notices), identifiers=ids or None, data_changes=table.row_changes(row),
        **explanation_fields(exp, "tabular", spec.labels))


def _value_text(f: Any, value: object) -> str:
    """A record's value as ``Field.describe`` words it, without the label ("67 years", "male", "missing")."""
    text = f.describe(value)
    for sep in (" = ", ": "):
        if text.startswith(f.label + sep):
            return text[len(f.label) + len(sep):]
    return text
