"""Case reports: the engine. A workspace builds a ``CaseReport`` (``case``) from its results; this package
renders it as a PDF (``pdf``), as PNG figures or as a zip with the CSVs (``bundle``), and writes CSVs
(``csv``). Everything is returned as bytes; nothing touches the disk. Per-workspace content lives in
``medai_core.workspaces.<name>.report``.
"""
from __future__ import annotations

from medai_core.report.bundle import figure_pngs, report_zip
from medai_core.report.case import CaseReport, ReportFigure, ReportTable
from medai_core.report.pdf import build_pdf

__all__ = ["CaseReport", "ReportFigure", "ReportTable", "build_pdf", "figure_pngs", "report_zip"]
