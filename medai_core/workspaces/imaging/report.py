"""The Imaging workspace's case report: the scan frame, the prediction, the heatmap overlay."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping


from medai_core.plots import static as F
from medai_core.report.case import (INTENDED_USE, CaseReport, ReportFigure, ReportTable, explainer_meta, explanation_fields, is_signed, model_summary,
                                    report_time, software_versions)

if TYPE_CHECKING:
    from medai_core.explain.base import Explanation
    from medai_core.models.spec import ModelSpec
    from medai_core.io.scan import Scan
    from medai_core.workspaces.imaging.pipeline import ImagePrediction


def image_report(scan: Scan, spec: ModelSpec, pred: ImagePrediction, exp: Explanation | None = None, *,
                 frame: int = 0, window: tuple[float, float] | None = None, use_voi_lut: bool = False,
                 mode: str = "positive", opacity: float = 0.5, cmap: str = "jet",
                 sanity: Mapping[str, Any] | None = None, file_name: str | None = None,
                 allow_burned_in: bool = False, created: datetime | None = None) -> CaseReport:
    """The imaging workspace's case: the scan frame, the prediction, the heatmap overlay.

    Args:
        scan, spec, pred, exp: what ``io.load_scan``, ``models.get_spec``, ``imaging.predict`` and
            ``imaging.explain`` returned (``exp`` None: no explanation section).
        frame, window, use_voi_lut: the viewer's frame and window (as ``io.render`` takes them).
        mode, opacity, cmap: the overlay settings (as ``explain.normalise_map`` / ``overlay`` take them).
        sanity: the sanity check's results, if run.
        file_name: the uploaded file's name; file names can hold names, so it is an identifier.
        allow_burned_in: the user has checked that the image shows no burned-in identifiers; otherwise a
            scan that may carry them (see ``io.deid.burned_in_risk``) is printed only with identifiers.
        created: report time (default now, UTC).
    """
    from medai_core.explain import normalise_map, overlay
    from medai_core.io.deid import scan_burned_in_risk
    from medai_core.io.scan import render

    display = render(scan, frame, window, use_voi_lut=use_voi_lut)
    notes: list[str] = []
    if pred.ood:
        notes.append(f"This scan does not look like the images the model was trained on (out-of-distribution score "
                     f"{pred.ood_score:.1f} > {pred.ood_threshold:.1f}). The prediction must not be used.")
    risk = scan_burned_in_risk(scan)
    hide_pixels = risk is not None and not allow_burned_in
    if hide_pixels:
        notes.append(f"{risk} The scan images are therefore printed only in a report with identifiers.")
    else:
        notes.append("Images are printed as they appear in the file: check them for burned-in text before sharing.")
    over, reading = None, ""
    if exp is not None:
        signed = is_signed(exp, "image")
        heat = normalise_map(exp.attributions, signed=signed, mode=mode)
        over = overlay(display, heat, opacity, cmap)
        reading = (f"Heatmap ({cmap} colour map, opacity {opacity:.0%}): warm colours mark the regions that most "
                   f"{'supported' if signed and mode == 'positive' else 'influenced'} the class '{exp.target}' "
                   f"({'evidence for the class only' if signed and mode == 'positive' else 'magnitude, either direction'}). "
                   "A heatmap shows where the model looked, not why; it is not a segmentation.")
    figs = [ReportFigure("Scan and explanation", F.scan_overlay_png(
        display, over, (f"Scan, frame {frame + 1} of {scan.n_frames}",
                        f"{explainer_meta(exp.method, 'image')['label']}: '{exp.target}'" if exp else "")),
        "Left: the frame in the viewer's window. Right: the explanation overlaid." if exp else
        "The frame in the viewer's window.", identifying=hide_pixels)]
    pos_thr = (pred.positive_text, pred.threshold) if pred.positive_label else None
    bars = dict(pred.probabilities)
    if len(pred.positive_group) > 1:  # the threshold applies to the group's sum: drawn as its own bar
        bars = {pred.positive_text: pred.positive_probability} | bars
    figs.append(ReportFigure("Calibrated probabilities", F.probability_bar_png(
        bars, highlight=pred.label, threshold=pos_thr, muted=pred.ood),
        f"Dashed line: the decision threshold for '{pred.positive_text}' ({pred.threshold:.0%})." if pos_thr else ""))
    h, w = scan.shape
    summary = {"Format": scan.source, "Size": f"{w} x {h} pixels", "Frame": f"{frame + 1} of {scan.n_frames}",
               "Modality": scan.modality or "-",
               "Window": "file VOI LUT" if use_voi_lut else (f"centre {window[0]:g}, width {window[1]:g}" if window else
                                                            "the file's default"),
               "Model input": f"{spec.input_size[0]} x {spec.input_size[1]} grayscale, the file's default window"}
    if scan.pixel_spacing:
        summary["Pixel spacing"] = f"{scan.pixel_spacing[0]:g} x {scan.pixel_spacing[1]:g} mm"
    # the file meta group (0002) describes the transfer, not the image
    meta_rows = tuple((m.name, m.value) for m in scan.metadata
                      if not m.identifying and not m.tag.startswith("(0002,"))[:30]
    title = "DICOM attributes" if scan.source.startswith("DICOM") else "Image file"
    tables = (ReportTable(f"{title} (identifiers hidden)", ("Attribute", "Value"), meta_rows),) if meta_rows else ()
    # private tags (odd group) are vendor data, often binary: counted, not printed. PNG/JPEG/... items have no tag.
    private = [m for m in scan.metadata if m.tag.startswith("(") and int(m.tag[1:5], 16) % 2 == 1]
    ids = {m.name: m.value for m in scan.metadata
           if m.identifying and m not in private and m.value and not m.value.startswith("<")}
    if private:
        ids["Private tags"] = f"{len(private)} (vendor data, not printed)"
    if file_name:
        ids["File name"] = file_name
    head = f"{pred.label} ({pred.probabilities[pred.label]:.0%}, calibrated)"
    if pred.positive_label:
        head += f"; '{pred.positive_text}' is chosen when its probability reaches {pred.threshold:.0%}"
        if len(pred.positive_group) > 1:
            head += f" (here {pred.positive_probability:.0%})"
    if pred.ood:
        head = "NOT USABLE (out of distribution): " + head
    return CaseReport(
        workspace="Imaging", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=report_time(created), software=software_versions(), input_summary=summary, prediction=head,
        probabilities=dict(pred.probabilities), explanation_reading=reading,
        sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs), tables=tables, notes=tuple(notes),
        identifiers=ids or None, **explanation_fields(exp, "image"))
