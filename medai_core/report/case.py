"""One case report as plain values (``CaseReport``), and the helpers every workspace's report content uses.

Identifiers are collected into ``CaseReport.identifiers`` and printed only when the caller asks
(``include_identifiers=True``); by default the report says they were left out. What counts as an
identifier, per workspace:

* imaging: every DICOM attribute the viewer hides (names, IDs, dates, UIDs, institutions, private
  tags; ``io.deid.is_identifying``) and the file name. Scan images that may show burned-in text (the
  rule of ``io.deid.burned_in_risk``) are figures marked ``identifying`` and left out the same way.
* records: the ``id`` column and any other column that is not a model input (a name column, say).
  The record's feature values are the input itself and are printed.
* notes: the note's text (notes carry names, dates and places in free text). By default only the
  words with the largest attributions are shown, as the model read them: lower case, numbers as
  "<num>", and words outside the model's vocabulary as "<unknown word>", since the model never saw
  their spelling. A vocabulary word that happens to be a name can still appear.
* vital signs: the real date and time the series started (an upload's timestamps); charts and tables
  use hours since the record began.

"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from medai_core import __version__

if TYPE_CHECKING:
    from medai_core.io.changes import DataChange
    from medai_core.explain.base import Explanation
    from medai_core.models.spec import ModelSpec

INTENDED_USE = ("Intended use: decision support and demonstration. MedAI does not make a diagnosis; every output "
                "must be reviewed by a qualified clinician together with the full clinical picture.")
BANNER = "DECISION SUPPORT ONLY - NOT A DIAGNOSIS"
BANNER_TEXT = ("This report explains a machine-learning model's output. It is not a medical device and not a "
               "diagnosis; it must be read by a qualified clinician with the full clinical picture.")
IDENTIFIERS_LEFT_OUT = "Patient identifiers are left out of this report."
UNKNOWN_WORD = "<unknown word>"
WORKSPACES = ("Imaging", "Records", "Notes", "Vital signs")


@dataclass(frozen=True)
class ReportFigure:
    """A figure as PNG bytes; ``identifying`` figures (e.g. a scan that may show burned-in text) are
    printed only with ``include_identifiers=True``."""

    title: str
    png: bytes
    caption: str = ""
    identifying: bool = False


@dataclass(frozen=True)
class ReportTable:
    """A small table: a header and rows of text."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CaseReport:
    """Everything a case report shows, as plain values.

    Attributes:
        workspace: "Imaging", "Records", "Notes" or "Vital signs".
        model, model_summary: registry name and a one-paragraph summary (description + test-set numbers).
        intended_use: the intended-use statement printed under the model.
        created: when the report was made (timezone-aware).
        software: component -> version (MedAI, Python, torch, captum, ...).
        input_summary: what was analysed, as label -> value (no identifiers).
        prediction: the headline result in words.
        probabilities: class -> calibrated probability (empty for forecasts).
        explanation_method: the explainer's human name ("" if no explanation was run).
        explanation_params, explanation_diagnostics: its parameters and checks (e.g. IG's convergence delta).
        explanation_reading: how to read the explanation's colours and values.
        sanity: the sanity check's results (keys such as verdict, rank_correlation, deletion_auc), or None.
        figures, tables: in print order.
        notes: warnings and statements printed under the prediction (out-of-distribution, left-out text).
        identifiers: label -> value, printed only with ``include_identifiers=True``; None when the
            input carries none.
        data_changes: what was changed in the user's data before scoring (cells set to missing,
            readings dropped, rows not scored), printed as "What we changed in your data".
    """

    workspace: str
    model: str
    model_summary: str
    intended_use: str
    created: datetime
    software: dict[str, str]
    input_summary: dict[str, str]
    prediction: str
    probabilities: dict[str, float] = field(default_factory=dict)
    explanation_method: str = ""
    explanation_params: dict[str, Any] = field(default_factory=dict)
    explanation_diagnostics: dict[str, float] = field(default_factory=dict)
    explanation_reading: str = ""
    sanity: dict[str, Any] | None = None
    figures: tuple[ReportFigure, ...] = ()
    tables: tuple[ReportTable, ...] = ()
    notes: tuple[str, ...] = ()
    identifiers: dict[str, str] | None = None
    data_changes: tuple[DataChange, ...] = ()


# ------------------------------------------------------------------------------------------ helpers
def software_versions() -> dict[str, str]:
    """Versions of MedAI and of the libraries that shape its outputs (read from package metadata)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"MedAI": __version__, "Python": platform.python_version()}
    for name, dist in (("torch", "torch"), ("captum", "captum"), ("pydicom", "pydicom"), ("fpdf2", "fpdf2")):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def model_summary(spec: ModelSpec) -> str:
    """The model's description and its card's headline test-set numbers, in one paragraph."""
    from medai_core.errors import ModelError
    from medai_core.models.spec import card_headline

    try:
        numbers = "; ".join(f"{k} {v}" for k, v in card_headline(spec.name))
    except (ModelError, KeyError):
        numbers = ""
    return f"{spec.description}." + (f" Test set: {numbers}." if numbers else "") + f" Model card: {spec.card}."


def elapsed_text(minutes: float) -> str:
    """Time since the record began as h:mm (never a date)."""
    m = int(round(float(minutes)))
    return f"{m // 60}:{m % 60:02d}"


def report_time(created: datetime | None) -> datetime:
    """``created``, or now (UTC) when None."""
    return created if created is not None else datetime.now(timezone.utc)


def explainer_meta(method: str, modality: str) -> dict[str, Any]:
    """The explainer's registry metadata (label, signed, ...); a plain stand-in for an unknown name."""
    from medai_core.errors import InputError, UnknownName
    from medai_core.explain import explainer_for

    try:
        return explainer_for(method, modality)[1]
    except (InputError, UnknownName):
        return {"label": method, "signed": True}


def format_number(v: Any) -> str:
    """Floats to 4 significant digits; anything else as ``str``."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def explanation_fields(exp: Explanation | None, modality: str, labels: Sequence[str] = ()) -> dict[str, Any]:
    """The ``CaseReport`` fields that describe ``exp`` (method, parameters, diagnostics); {} for None."""
    if exp is None:
        return {}
    meta = explainer_meta(exp.method, modality)
    params = {k: v for k, v in exp.params.items() if not k.startswith("_")}
    # some explainers name their target by index (records: "1")
    params["target"] = labels[int(exp.target)] if exp.target.isdigit() and int(exp.target) < len(labels) else exp.target
    params["time"] = f"{exp.seconds * 1000:.0f} ms"
    return {"explanation_method": meta["label"], "explanation_params": params,
            "explanation_diagnostics": dict(exp.diagnostics)}


def is_signed(exp: Explanation, modality: str) -> bool:
    """Whether the explainer of ``exp`` gives signed evidence (for and against) rather than magnitudes."""
    return bool(explainer_meta(exp.method, modality).get("signed", True))
