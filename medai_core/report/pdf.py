"""A case report as a PDF (fpdf2), built in memory.

The text font is DejaVu Sans, embedded from matplotlib's own copy (full Unicode for European scripts);
characters it lacks become "?". Without it (a stripped matplotlib) the core Helvetica font is used and
text is reduced to Latin-1.
"""
from __future__ import annotations

import io
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence


from medai_core import __version__
from medai_core.plots.static import DPI
from medai_core.report.case import (BANNER, BANNER_TEXT, IDENTIFIERS_LEFT_OUT, CaseReport, ReportFigure,
                                    format_number)


@lru_cache(maxsize=1)
def _font_files() -> tuple[Path, Path, frozenset[int]] | None:
    """matplotlib's DejaVu Sans (regular, bold) and the code points it covers, or None."""
    try:
        import matplotlib
        from fontTools.ttLib import TTFont
    except ImportError:
        return None
    d = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
    if not (regular.exists() and bold.exists()):
        return None
    cmap = frozenset(TTFont(str(regular), lazy=True).getBestCmap())
    return regular, bold, cmap


_LATIN1 = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "•": "*",
                         "≥": ">=", "≤": "<=", "×": "x", "°": " deg", "→": "->"})


def _clean_text(text: object, cmap: frozenset[int] | None) -> str:
    """Printable text the font can draw: control characters out, unknown characters as '?'."""
    s = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\t", "    ")
    s = "".join(c for c in s if c == "\n" or unicodedata.category(c)[0] != "C")
    if cmap is None:
        s = s.translate(_LATIN1)
        return s.encode("latin-1", "replace").decode("latin-1")
    return "".join(c if c == "\n" or ord(c) in cmap else "?" for c in s)


def _fmt_value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {format_number(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(format_number(x) for x in v)
    return format_number(v)


def build_pdf(report: CaseReport, include_identifiers: bool = False) -> bytes:
    """The report as an A4 PDF (bytes): title, the decision-support banner, prediction, model and intended
    use, input, explanation and sanity check, figures, tables, identifiers (only if asked), software,
    page numbers on every page.

    Args:
        report: the case.
        include_identifiers: print ``report.identifiers`` and identifying figures; otherwise the report
            says identifiers were left out.
    """
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    fonts = _font_files()
    cmap = fonts[2] if fonts else None
    family = "DejaVu" if fonts else "helvetica"

    def t(x: object) -> str:
        return _clean_text(x, cmap)

    class _PDF(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(family, "", 7.5)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, t(f"MedAI {__version__} case report - {BANNER.lower().capitalize()} - page "
                              f"{self.page_no()} of {{nb}}"), align="C")

    pdf = _PDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(16, 16, 16)
    pdf.set_auto_page_break(True, margin=18)
    if fonts:
        pdf.add_font("DejaVu", "", str(fonts[0]))
        pdf.add_font("DejaVu", "B", str(fonts[1]))
    pdf.set_title(t(f"MedAI case report: {report.workspace}"))
    pdf.set_author("MedAI")
    pdf.set_creator(t(f"MedAI {__version__}"))
    pdf.set_creation_date(report.created)
    pdf.add_page()
    width = pdf.epw
    nl = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}

    def heading(text: str, need: float = 25) -> None:
        if pdf.get_y() + need > pdf.page_break_trigger:  # keep a heading with what follows it
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(family, "B", 12)
        pdf.set_text_color(30, 30, 30)
        pdf.cell(0, 7, t(text), **nl)
        pdf.set_draw_color(200, 200, 200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.5)

    def para(text: str, size: float = 9.5, bold: bool = False, color: tuple[int, int, int] = (30, 30, 30)) -> None:
        pdf.set_font(family, "B" if bold else "", size)
        pdf.set_text_color(*color)
        pdf.multi_cell(0, size * 0.5, t(text), align="L", **nl)

    def pairs(items: Mapping[str, Any]) -> None:
        for k, v in items.items():
            pdf.set_font(family, "B", 9)
            pdf.set_text_color(30, 30, 30)
            label = t(k)
            while len(label) > 4 and pdf.get_string_width(label) > 54:  # one line per label
                label = label[:-2] + "…" if cmap else label[:-4] + "..."
            pdf.cell(56, 4.8, label)
            pdf.set_font(family, "", 9)
            pdf.multi_cell(0, 4.8, t(_fmt_value(v)), align="L", **nl)

    def table(header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float] | None = None) -> None:
        pdf.set_font(family, "", 8)
        pdf.set_text_color(30, 30, 30)
        widths = widths or ((1, 2) if len(header) == 2 else (2,) + (1,) * (len(header) - 1))
        with pdf.table(col_widths=widths, first_row_as_headings=True, line_height=4.2, text_align="LEFT", padding=0.8,
                       borders_layout="HORIZONTAL_LINES", headings_style=_headings(family)) as tb:
            for r in [header, *rows]:
                line = tb.row()
                for c in r:
                    line.cell(t(c))
        pdf.ln(1)

    # title and banner
    pdf.set_font(family, "B", 17)
    pdf.cell(0, 9, t(f"MedAI case report: {report.workspace}"), **nl)
    pdf.set_font(family, "", 8.5)
    pdf.set_text_color(90, 90, 90)
    pdf.cell(0, 5, t(f"Created {report.created.strftime('%Y-%m-%d %H:%M %Z').strip()} - MedAI {__version__} - "
                     f"model {report.model}"), **nl)
    pdf.ln(2)
    pdf.set_fill_color(253, 237, 236)
    pdf.set_draw_color(192, 57, 43)
    pdf.set_line_width(0.6)
    pdf.set_text_color(150, 30, 20)
    pdf.set_font(family, "B", 11)
    pdf.multi_cell(0, 6.5, t(BANNER), border="LTR", fill=True, align="C", **nl)
    pdf.set_font(family, "", 8.5)
    pdf.multi_cell(0, 4.5, t(BANNER_TEXT), border="LBR", fill=True, align="C", padding=(0, 2, 1.5, 2), **nl)
    pdf.set_line_width(0.2)
    pdf.set_fill_color(255, 255, 255)
    if include_identifiers and report.identifiers:
        pdf.ln(1.5)
        para("CONTAINS PATIENT IDENTIFIERS: handle as a clinical record; do not share outside the care team.",
             9, bold=True, color=(150, 30, 20))

    heading("Prediction")
    para(report.prediction, 11, bold=True)
    if report.probabilities:
        pdf.ln(1)
        table(("Class", "Probability"), [(k, f"{v:.1%}") for k, v in
                                          sorted(report.probabilities.items(), key=lambda kv: -kv[1])[:8]])
    for n in report.notes:
        para(n, 9, color=(160, 82, 0))
        pdf.ln(0.5)

    heading("Model and intended use")
    pairs({"Model": report.model})
    para(report.model_summary, 9)
    pdf.ln(1)
    para(report.intended_use, 9, bold=True)

    heading("Input")
    pairs(report.input_summary)
    _data_changes(report, heading, para, table)

    heading("Explanation")
    if report.explanation_method:
        pairs({"Method": report.explanation_method})
        if report.explanation_params:
            pairs({"Parameters": report.explanation_params})
        if report.explanation_diagnostics:
            pairs({"Diagnostics": report.explanation_diagnostics})
        if report.explanation_reading:
            para(report.explanation_reading, 9)
    else:
        para("No explanation was computed for this case.", 9)
    pdf.ln(1)
    if report.sanity:
        s = dict(report.sanity)
        verdict = s.pop("verdict", None)
        pairs({"Sanity check": verdict if verdict is not None else "see values"})
        if s:
            pairs({k.replace("_", " "): v for k, v in s.items()})
    else:
        pairs({"Sanity check": "not run for this case"})

    shown = [f for f in report.figures if include_identifiers or not f.identifying]
    if report.figures:
        heading("Figures", need=_figure_height(shown[0], width) + 20 if shown else 25)
        for f in report.figures:
            if f not in shown:
                para(f"{f.title}: left out (it may show patient identifiers).", 9, color=(160, 82, 0))
                continue
            _image(pdf, f, width, t, family)

    for tb in report.tables:
        heading(tb.title)
        table(tb.header, tb.rows)

    heading("Patient identifiers", need=20)
    if include_identifiers and report.identifiers:
        para("Included at the user's request.", 9, color=(150, 30, 20))
        pairs({k: (v if len(v) <= 4000 else v[:4000] + " [...]") for k, v in report.identifiers.items()})
    elif include_identifiers:
        para("The input carries no patient identifiers.", 9)
    else:
        para(IDENTIFIERS_LEFT_OUT + (" The input carries some; ask for a report with identifiers to print them."
                                     if report.identifiers else ""), 9)

    heading("Software", need=8 + 5 * len(report.software))
    pairs(report.software)
    return bytes(pdf.output())


def _headings(family: str) -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", fill_color=(240, 240, 240))


def _figure_size(fig: ReportFigure, width: float, max_h: float = 230.0) -> tuple[float, float]:
    """Printed (width, height) in mm: the PNG at its own DPI, shrunk to the text width and a page."""
    from PIL import Image

    with Image.open(io.BytesIO(fig.png)) as im:
        px_w, px_h = im.size
    w = min(width, px_w / DPI * 25.4)
    h = w * px_h / px_w
    if h > max_h:
        h, w = max_h, max_h * px_w / px_h
    return w, h


def _figure_height(fig: ReportFigure, width: float) -> float:
    return _figure_size(fig, width)[1]


def _image(pdf: Any, fig: ReportFigure, width: float, t: Any, family: str) -> None:
    from fpdf.enums import XPos, YPos

    w, h = _figure_size(fig, width, pdf.eph - 30)
    if pdf.get_y() + h + 12 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.set_font(family, "B", 10)
    pdf.set_text_color(30, 30, 30)
    pdf.cell(0, 6, t(fig.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.image(io.BytesIO(fig.png), x=pdf.l_margin + (width - w) / 2, w=w, h=h)
    if fig.caption:
        pdf.set_font(family, "", 8)
        pdf.set_text_color(80, 80, 80)
        pdf.multi_cell(0, 4, t(fig.caption), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)


MAX_CHANGE_ROWS = 40  # listed in the PDF; the ZIP's data_changes.csv has them all


def _data_changes(report: CaseReport, heading: Any, para: Any, table: Any) -> None:
    """The "What we changed in your data" section: a summary per field, then the first changes."""
    from medai_core.io.changes import changes_table, summarise

    changes = report.data_changes
    heading("What we changed in your data")
    if not changes:
        para("Nothing: every value was used as it was uploaded.", 9)
        return
    for line in summarise(changes):
        para(line, 9)
    header, rows = changes_table(changes)
    table(header, rows[:MAX_CHANGE_ROWS], widths=(0.6, 1.5, 0.8, 1.2, 1.3, 3.4))
    if len(rows) > MAX_CHANGE_ROWS:
        para(f"... and {len(rows) - MAX_CHANGE_ROWS} more (all of them are in the ZIP's data_changes.csv).", 8.5)
