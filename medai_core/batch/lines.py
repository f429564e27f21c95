"""One input -> its result lines, shared by the sequential CLI (``image predict``, ``notes predict``,
``vitals forecast``, ``vitals sepsis``, ``records predict``) and the batch scorer, so that both give the same
predictions by construction (a test compares them anyway).

Every function raises ``MedAIError`` for an input that cannot be used; the caller turns that into an error
line/row. Models are passed in (loaded once by the caller).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from medai_core.errors import MedAIError


# scans per forward pass on the CPU: busi_effnet, one thread, per scan: 54 ms alone, 44 ms in 4s, 69 ms in 16s and
# 91 ms in 32s (larger batches fall out of the cache)
FORWARD_CHUNK = 4


@dataclass
class ImageCase:
    """What an image line was computed from, for an explanation afterwards."""

    scan: Any
    spec: Any
    model: Any
    x: Any
    pred: Any
    frame: int


def require_file(path: Path) -> None:
    if not path.exists():
        raise MedAIError("No such file.")


def image_line(path: Path, model_name: str | None, model_for: Callable[[str], Any], frame: int = 0, *,
               keep_grid: bool = False) -> tuple[dict[str, object], ImageCase]:
    """``image predict``'s line for one scan: forced through ``model_name``, or routed by content when None
    (then the line has ``route``). ``keep_grid``: a map follows (``image_map``), so the prediction keeps its
    feature grid and Grad-CAM needs no second pass."""
    from medai_core.models import get_spec
    from medai_core.workspaces.imaging import forced, load_scan, predict, prepare_input, route_scan

    require_file(path)
    scan = load_scan(path)
    frame = min(frame, scan.n_frames - 1)
    if model_name:
        name = model_name
    else:  # chosen by content: every routed model's OOD guard, DICOM Modality/BodyPartExamined as hints
        route = route_scan(scan, model_for, frame, keep_grid=keep_grid)
        name = route.model
    spec, model = get_spec(name), model_for(name)
    x = prepare_input(scan, spec, frame)
    if model_name:  # the header rule still flags, e.g., a CT forced through the chest model
        pred = forced(name, predict(model, spec, x, keep_grid=keep_grid), scan).prediction
    else:
        pred = route.prediction
    line = pred.to_json(str(path))
    if not model_name:
        line["route"] = {"reason": route.reason, "candidates": route.to_json()["candidates"]}
    return line, ImageCase(scan, spec, model, x, pred, frame)


def image_lines_forced(paths: list[Path], model_name: str, model_for: Callable[[str], Any], frame: int = 0
                       ) -> list[tuple[dict[str, object], float]]:
    """``image predict --model NAME``'s lines for many scans, in order, with forward passes over ``FORWARD_CHUNK``
    readable scans at a time; each with the seconds spent on that scan (its reading plus its share of the pass)."""
    import time

    import torch

    from medai_core.models import get_spec
    from medai_core.workspaces.imaging import forced, load_scan, predict_batch, prepare_input

    spec, model = get_spec(model_name), model_for(model_name)
    out: list[Any] = [None] * len(paths)
    ok, xs, scans, took = [], [], [], [0.0] * len(paths)
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        try:
            require_file(path)
            scan = load_scan(path)
            xs.append(prepare_input(scan, spec, min(frame, scan.n_frames - 1)))
            ok.append(i)
            scans.append(scan)
        except MedAIError as exc:
            out[i] = {"file": str(path), "error": str(exc)}
        took[i] = time.perf_counter() - t0
    if xs:
        t0 = time.perf_counter()
        preds = [p for j in range(0, len(xs), FORWARD_CHUNK) for p in predict_batch(model, spec, torch.cat(xs[j:j + FORWARD_CHUNK]))]
        share = (time.perf_counter() - t0) / len(xs)
        for i, scan, pred in zip(ok, scans, preds):
            out[i] = forced(model_name, pred, scan).prediction.to_json(str(paths[i]))
            took[i] += share
    return list(zip(out, took))


def image_map(case: ImageCase, method: str, target: str | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
    """The explanation of ``case``'s prediction (or of ``target``), its normalised heat map and the PNG-ready
    overlay of that map on the displayed scan (uint8 RGB)."""
    from medai_core.workspaces.imaging import EXPLAINERS, explain, normalise_map, overlay, render

    exp = explain(case.model, case.spec, case.x, method, target or case.pred.label, prediction=case.pred)
    heat = normalise_map(exp.attributions, signed=EXPLAINERS.entry(method).meta["signed"])
    return exp, heat, overlay(render(case.scan, case.frame), heat)


def note_lines(path: Path, model: Any, spec: Any, vocab: Any) -> Iterator[dict[str, object]]:
    """``notes predict``'s lines for one file, in file order: one per note, ``{"id"|"file", "error"}`` for a
    CSV row set aside (each also carries ``"row"``, the 1-based CSV row, for the batch output)."""
    from medai_core.workspaces.notes import SkippedNote, classify, load_notes

    require_file(path)
    notes = load_notes(path)
    for note in notes.in_file_order():
        extra = {} if note.row is None else {"row": int(note.row)}
        if isinstance(note, SkippedNote):
            yield {note.key: note.ref, "error": note.message(), **extra}
            continue
        try:
            yield {**classify(model, spec, vocab, note.text).to_json(note.key, note.ref, spec.name), **extra}
        except MedAIError as exc:
            yield {note.key: note.ref, "error": str(exc), **extra}


def forecast_line(path: Path, model: Any, spec: Any, horizon: int | None = None) -> dict[str, object]:
    """``vitals forecast``'s line for one series."""
    from medai_core.workspaces.vitals import forecast, load_series

    require_file(path)
    series = load_series(path, spec.extra["series"], path.name)
    fc = forecast(model, spec, series, horizon)
    return {"file": str(path), "model": spec.name, "forecast": fc.to_json(series.origin),
            "notices": [*series.notices, *(c.text() for c in series.changes)],
            "changes": [c.to_json() for c in series.changes]}


def read_sepsis(path: Path, spec: Any) -> Any:
    """A sepsis record read and checked (``vitals sepsis`` scores these in padded batches)."""
    from medai_core.workspaces.vitals.sepsis import load_record

    require_file(path)
    record = load_record(path, spec, path.name)
    if record.n_hours == 0:
        raise MedAIError("The record has no rows to score.")
    return record


def sepsis_lines(model: Any, spec: Any, batch: list[tuple[Path, Any]]) -> list[dict[str, object]]:
    """``vitals sepsis``'s lines for records already read, scored in one padded pass, in input order."""
    from medai_core.workspaces.vitals.sepsis import score_records

    scores = score_records(model, spec, [r for _, r in batch]) if batch else []
    out = []
    for (path, record), sc in zip(batch, scores):
        line = {"file": str(path), "model": spec.name, **sc.to_json()}
        if record.kind != "psv":
            line["hours"] = [int(h) for h in record.hours]
        if record.changes:
            line["changes"] = [c.to_json() for c in record.changes]
        out.append(line)
    return out


def records_rows(path: Path | bytes, model: Any, spec: Any) -> tuple[Any, Any, Any]:
    """``records predict`` of one CSV: (the table read, its scores, the rows written back with risk, label and
    warnings)."""
    from medai_core.workspaces.records import load_records, score, write_back

    if isinstance(path, Path):
        require_file(path)
    table = load_records(path)
    scores = score(model, spec, table)
    return table, scores, write_back(table, scores)
