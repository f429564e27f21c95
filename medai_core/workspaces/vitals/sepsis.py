"""Sepsis early warning: score a stay hour by hour, explain one hour, check the explanation, export.

``load_record`` -> ``score_record`` (risk and alarm at every row, from rows up to it only) ->
``explain_hour`` ((hour x variable) attributions of one hour's risk) -> ``trust_sepsis`` (randomisation
and faithfulness). ``operating_point`` reads the held-out performance at the shipped threshold from the card.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from medai_core.errors import InputError
from medai_core.explain.base import Explanation, ProgressFn, explainer_for
from medai_core.io.sepsis import SepsisRecord, load_sepsis_record
from medai_core.models.sepsis import sepsis_features
from medai_core.models.spec import ModelSpec, read_card
from medai_core.plots.sepsis import (attention_figure, operating_figure, risk_figure,  # noqa: F401 (re-exported)
                                   sepsis_attribution_heatmap)
from medai_core.trust.checks import TrustReport, split_progress
from medai_core.trust.faithfulness import faithfulness_curves
from medai_core.trust.randomisation import cascading_randomisation
from medai_core.workspaces.vitals.samples import SYNTHETIC_SEPSIS, synthetic_sepsis_record  # noqa: F401
from medai_core.workspaces.vitals.sepsis_report import sepsis_report  # noqa: F401 (re-exported)

INTENDED_USE = ("Sepsis early warning for demonstration and research: a risk that sepsis (Sepsis-3) will be "
                "clinically recognised within 6 hours. It is not a diagnosis and must not delay or replace "
                "clinical assessment, cultures or treatment.")


@dataclass(frozen=True)
class SepsisScore:
    """Per row of the record: ``risk`` (calibrated probability), ``alarm`` (risk >= threshold)."""

    risk: np.ndarray
    alarm: np.ndarray
    threshold: float
    attention: np.ndarray  # (T, T): row t = hour t's attention over hours <= t
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"risk": [round(float(r), 4) for r in self.risk], "alarm": [int(a) for a in self.alarm]}


def load_record(data: bytes | Path | str, spec: ModelSpec, name: str = "") -> SepsisRecord:
    return load_sepsis_record(data, spec.extra["variables"], spec.extra["static"], name)


def record_inputs(model: nn.Module, record: SepsisRecord, upto: int | None = None) -> torch.Tensor:
    """(1, T, F) model input of the rows up to ``upto`` (inclusive; default all)."""
    n = record.n_hours if upto is None else upto + 1
    x = sepsis_features(record.values[:n], record.static[:n], model.mean.numpy(), model.std.numpy(),
                         model.log_vars.numpy() > 0.5)
    return torch.from_numpy(x).unsqueeze(0)


def score_record(model: nn.Module, spec: ModelSpec, record: SepsisRecord) -> SepsisScore:
    """Risk and alarm at every row (the GRU runs forward and attention looks back only: row t uses rows <= t)."""
    return score_records(model, spec, [record])[0]


@torch.inference_mode()
def score_records(model: nn.Module, spec: ModelSpec, records: list[SepsisRecord], batch_size: int = 64
                  ) -> list[SepsisScore]:
    """``score_record`` of many records, in length-sorted batches padded at the end (the network is causal, so
    padding after a record's last row never changes its risks). The same numbers, about 10x faster per record."""
    out: list[SepsisScore | None] = [None] * len(records)
    order = sorted(range(len(records)), key=lambda i: records[i].n_hours)
    thr = float(model.threshold)
    for k in range(0, len(order), batch_size):
        idx = [i for i in order[k:k + batch_size] if records[i].n_hours]
        if not idx:
            continue
        t0 = time.perf_counter()
        xs = [record_inputs(model, records[i])[0] for i in idx]
        logits, att = model.forward_with_attention(torch.nn.utils.rnn.pad_sequence(xs, batch_first=True))
        risk = model.risk(logits).numpy().astype(np.float64)
        each = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            n = records[i].n_hours
            out[i] = SepsisScore(risk[j, :n], risk[j, :n] >= thr, thr, att[j, :n, :n].numpy(), each)
    if any(o is None for o in out):
        raise InputError("A record has no rows to score.")
    return out  # type: ignore[return-value]


def explain_hour(model: nn.Module, spec: ModelSpec, record: SepsisRecord, hour: int,
                 method: str = "integrated_gradients", progress: ProgressFn | None = None, **params: Any) -> Explanation:
    """(hour + 1, variables) attributions of the risk logit at row ``hour`` to every value up to it."""
    if not 0 <= hour < record.n_hours:
        raise InputError(f"Hour index {hour} is outside the record (0-{record.n_hours - 1}).")
    fn, _ = explainer_for(method, "sepsis")
    return fn(model, (record_inputs(model, record, hour),), hour, progress=progress, **params)


def trust_sepsis(model: nn.Module, spec: ModelSpec, record: SepsisRecord, hour: int, method: str, exp: Explanation,
                 progress: ProgressFn | None = None) -> TrustReport:
    """Cascading randomisation of the map, and deletion/insertion of (hour, variable) values (set to the
    training mean, measurement pattern kept) against random orders, scored on the hour's risk logit."""
    p1, p2 = split_progress(progress)
    fn, _ = explainer_for(method, "sepsis")
    x = record_inputs(model, record, hour)
    cascade = cascading_randomisation(model, lambda m: fn(m, (x,), hour).attributions, progress=p1)
    nv = len(spec.extra["variables"])
    units = torch.full(x.shape[1:], -1, dtype=torch.long)
    units[:, :nv] = torch.arange(x.shape[1] * nv).view(-1, nv)
    ref = x[0].clone()
    ref[:, :nv] = 0.0

    def score(b: torch.Tensor) -> torch.Tensor:
        return model(b)[:, hour]

    curves = faithfulness_curves(score, x[0], ref, units, np.asarray(exp.attributions).ravel(), batch_size=64,
                                 score=f"risk logit at hour {hour}", unit="(hour, variable) values",
                                 reference_name="training mean, measurement pattern kept", progress=p2)
    return TrustReport(method, f"hour {hour}", cascade, curves)


def operating_point(spec: ModelSpec) -> dict[str, Any]:
    """Held-out (test split) performance at the shipped threshold, from the card: utility, AUROC, AUPRC,
    patient sensitivity and PPV, alarms per patient-day, median hours of warning; and the threshold table."""
    card = read_card(spec.name)
    t = card["test"]
    keys = ("utility", "auroc", "auprc", "sensitivity_patients", "ppv_patients", "ppv_hours",
            "alarm_episodes_per_patient_day", "alarm_hours_per_patient_day", "median_warning_hours",
            "warning_hours_iqr", "patients", "septic_patients", "ci95", "calibration")
    out = {k: t[k] for k in keys if k in t}
    out["threshold"] = card["threshold"]
    out["table"] = card.get("operating", [])
    gb = card.get("baselines", {}).get("gradient_boosting", {}).get("test")
    if gb:
        out["baseline"] = {k: gb[k] for k in ("utility", "auroc", "auprc") if k in gb}
    return out


def risk_csv(record: SepsisRecord, score: SepsisScore) -> bytes:
    df = pd.DataFrame({"row": np.arange(1, record.n_hours + 1), "ICULOS": record.hours, "risk": np.round(score.risk, 4),
                       "alarm": score.alarm.astype(int)})
    return df.to_csv(index=False).encode()


def attributions_csv(spec: ModelSpec, record: SepsisRecord, exp: Explanation) -> bytes:
    names = [s.name for s in spec.extra["variables"]]
    a = np.asarray(exp.attributions)
    df = pd.DataFrame(np.round(a, 6), columns=names)
    df.insert(0, "ICULOS", record.hours[: len(a)])
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()
