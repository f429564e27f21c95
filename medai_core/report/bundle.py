"""A case report as PNG figures, or as a zip of the PDF, every figure and the workspace's CSVs (in memory)."""
from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from datetime import timezone
from typing import Mapping

from medai_core.report.case import CaseReport
from medai_core.report.pdf import build_pdf


def _slug(text: str) -> str:
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")[:40] or "figure"


def figure_pngs(report: CaseReport, include_identifiers: bool = False) -> dict[str, bytes]:
    """The report's figures as ``{"01_scan_and_explanation.png": PNG bytes, ...}`` in print order;
    identifying figures only with ``include_identifiers``."""
    out: dict[str, bytes] = {}
    for i, f in enumerate(report.figures, 1):
        if f.identifying and not include_identifiers:
            continue
        out[f"{i:02d}_{_slug(f.title)}.png"] = f.png
    return out


def report_zip(report: CaseReport, include_identifiers: bool = False, extra: Mapping[str, bytes] | None = None) -> bytes:
    """A zip with ``report.pdf``, the figures as PNGs (``figures/``), every change made to the uploaded
    data (``data_changes.csv``, when there is one) and any ``extra`` files (e.g. the CSV exports,
    ``{"attributions.csv": bytes}``)."""
    buf = io.BytesIO()
    stamp = report.created.astimezone(timezone.utc).timetuple()[:6]
    files = {"report.pdf": build_pdf(report, include_identifiers)}
    files.update({f"figures/{k}": v for k, v in figure_pngs(report, include_identifiers).items()})
    if report.data_changes:
        files["data_changes.csv"] = _changes_csv(report)
    files.update(dict(extra or {}))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0))), data)
    return buf.getvalue()


def _changes_csv(report: CaseReport) -> bytes:
    import pandas as pd

    from medai_core.io.changes import changes_table
    from medai_core.report.csv import to_csv

    header, rows = changes_table(report.data_changes)
    return to_csv(pd.DataFrame(list(rows), columns=list(header)))
