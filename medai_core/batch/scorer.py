"""The batch scorer: holds a model once and turns a batch of input paths into output rows.

``BatchScorer`` is what Ray Data's ``map_batches`` runs on each actor; the benchmark's plain loop and the
tests call it directly too. Each input gives one row (an image, a series, a sepsis record, a ``.txt`` note) or
one row per record / note of a CSV, always with the input's path (``input``), the sha256 of its bytes
(``input_sha256``), the model and its weights digest, the seconds it took, and ``error`` (null, or why the
input, row or note was not scored). Nested fields (probabilities, forecast, route, ...) are JSON text, so
every part file has the same schema (``SCHEMAS``). Identifiers never go in: a notes or records CSV's ``id``
column is replaced by the 1-based ``row``.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from medai_core.batch import lines as L
from medai_core.errors import MedAIError

MODALITIES = ("image", "records", "notes", "vitals")
DEFAULT_MODEL = {"records": "support_ftt", "notes": "notes_tfm", "vitals": "icu_gru"}  # image: routed by content
_COMMON = [("input", pa.string()), ("input_sha256", pa.string()), ("file", pa.string()), ("model", pa.string()),
           ("weights_sha256", pa.string())]
_TAIL = [("explanation", pa.string()), ("error", pa.string()), ("seconds", pa.float64())]
SCHEMAS = {
    "image": pa.schema(_COMMON + [("label", pa.string()), ("probabilities", pa.string()), ("ood", pa.bool_()),
                                  ("ood_score", pa.float64()), ("positive", pa.string()), ("route", pa.string())] + _TAIL),
    "notes": pa.schema(_COMMON + [("row", pa.int64()), ("label", pa.string()), ("probabilities", pa.string())] + _TAIL),
    "records": pa.schema(_COMMON + [("row", pa.int64()), ("risk", pa.float64()), ("label", pa.string()),
                                    ("warnings", pa.string())] + _TAIL),
    "vitals": pa.schema(_COMMON + [("forecast", pa.string()), ("notices", pa.string()), ("changes", pa.string()),
                                   ("risk", pa.string()), ("alarm", pa.string()), ("hours", pa.string())] + _TAIL),
}


def _sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def map_stem(path: str) -> str:
    """A map file's stem, unique per input path: ``<file stem>-<8 hex of the path's sha1>``."""
    return f"{Path(path).stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def to_table(rows: list[dict[str, Any]], modality: str) -> pa.Table:
    """Rows as an Arrow table of the modality's schema: nested values JSON-encoded, absent fields null."""
    schema = SCHEMAS[modality]
    cols: dict[str, list] = {f.name: [] for f in schema}
    for r in rows:
        for f in schema:
            v = r.get(f.name)
            if isinstance(v, (dict, list, tuple)):
                v = json.dumps(v)
            elif isinstance(v, float) and math.isnan(v):
                v = None
            cols[f.name].append(v)
    return pa.table(cols, schema=schema)


class BatchScorer:
    """Loads the model (or, for routed images, each routed model on first use) once per actor."""

    def __init__(self, modality: str, model: str | None = None, explain: str | None = None, maps: str | None = None,
                 target: str | None = None, frame: int = 0, horizon: int | None = None, threads: int = 1) -> None:
        import torch

        from medai_core.models import get_spec, load_model, weights_digest

        if threads:
            torch.set_num_threads(threads)
        self.modality, self.explain, self.target, self.frame, self.horizon = modality, explain, target, frame, horizon
        self.maps = Path(maps) if maps else None
        self._models: dict[str, Any] = {}
        self._shas: dict[str, str | None] = {}
        self._load, self._digest = load_model, weights_digest
        self.name = model or DEFAULT_MODEL.get(modality)
        self.spec = get_spec(self.name) if self.name else None
        if self.name:
            self.model = self.model_for(self.name)
        if modality == "notes":
            from medai_core.workspaces.notes import load_vocab

            self.vocab = load_vocab(self.spec)

    def model_for(self, name: str) -> Any:
        if name not in self._models:
            self._models[name] = self._load(name)
        return self._models[name]

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        paths = [str(p) for p in batch["input"]]
        if self.modality == "vitals" and self.spec.modality == "sepsis":
            rows = self._sepsis(paths)
        elif self.modality == "image" and self.name and not self.explain:  # one forward pass for the batch
            rows = [self._common(line, p, t) for p, (line, t) in
                    zip(paths, L.image_lines_forced([Path(p) for p in paths], self.name, self.model_for, self.frame))]
        else:
            rows = [r for p in paths for r in self.score(p)]
        return to_table(rows, self.modality)

    def score(self, path: str) -> list[dict[str, Any]]:
        """The rows of one input, each with the common fields."""
        t0 = time.perf_counter()
        p = Path(path)
        try:
            rows = getattr(self, f"_{self.modality}")(p)
        except MedAIError as exc:
            rows = [{"file": path, "error": str(exc)}]
        seconds = time.perf_counter() - t0
        return [self._common(r, path, seconds) for r in rows]

    def _common(self, row: dict[str, Any], path: str, seconds: float) -> dict[str, Any]:
        """``row`` with the fields every row has: input, its sha256, model, weights digest, seconds."""
        name = row.get("model") or self.name
        if path not in self._shas:
            self._shas = {path: _sha256(Path(path))}  # the rows of one input come together
        row.update(input=path, input_sha256=self._shas[path], model=name, seconds=seconds,
                   weights_sha256=self._digest(name) if name else None)
        return row

    def _image(self, p: Path) -> list[dict[str, Any]]:
        line, case = L.image_line(p, self.name, self.model_for, self.frame, keep_grid=bool(self.explain))
        if self.explain:
            from PIL import Image

            exp, _, png = L.image_map(case, self.explain, self.target)
            stem = self.maps / f"{map_stem(str(p))}.{self.explain}"
            np.save(f"{stem}.npy", np.asarray(exp.attributions, dtype=np.float32))
            Image.fromarray(png).save(f"{stem}.png")
            line["explanation"] = {"method": self.explain, "target": exp.target, "npy": f"{stem}.npy",
                                   "png": f"{stem}.png", **{k: round(v, 6) for k, v in exp.diagnostics.items()}}
        return [line]

    def _notes(self, p: Path) -> list[dict[str, Any]]:
        from medai_core.workspaces.notes import load_notes

        rows = []
        for line in L.note_lines(p, self.model, self.spec, self.vocab):
            ref = line.pop("id", None)  # an identifier: the row number stands in for it
            if ref is not None and "error" in line:
                line["error"] = line["error"].replace(f" ({ref})", "")
            rows.append({"file": str(p), **line})
        if self.explain:
            from medai_core.workspaces.notes import explain_note

            texts = {n.row: n.text for n in load_notes(p).in_file_order() if hasattr(n, "text")}
            for r in rows:
                if "error" not in r:
                    ta = explain_note(self.model, self.spec, self.vocab, texts[r.get("row")], self.target or r["label"],
                                      self.explain)
                    r["explanation"] = self._save(p, ta.values, ta.explanation, r.get("row"))
        return rows

    def _records(self, p: Path) -> list[dict[str, Any]]:
        table, scores, out = L.records_rows(p, self.model, self.spec)
        rows = []
        for i in range(len(out)):
            scored = bool(scores.scored[i])
            rows.append({"file": str(p), "row": i + 1, "risk": float(out["risk"].iloc[i]) if scored else None,
                         "label": out["label"].iloc[i] if scored else None, "warnings": out["warnings"].iloc[i],
                         "error": None if scored else (out["warnings"].iloc[i] or "not scored")})
            if self.explain and scored:
                from medai_core.workspaces.records import explain_record

                exp = explain_record(self.model, self.spec, table, i, self.explain)
                rows[-1]["explanation"] = self._save(p, exp.attributions, exp, i + 1)
        return rows

    def _vitals(self, p: Path) -> list[dict[str, Any]]:
        line = L.forecast_line(p, self.model, self.spec, self.horizon)
        if self.explain:
            from medai_core.workspaces.vitals import explain_forecast, load_series

            series = load_series(p, self.spec.extra["series"], p.name)
            signal = self.target or self.spec.extra["series"].signals[0].name
            exp = explain_forecast(self.model, self.spec, series, signal, 1, self.explain)
            line["explanation"] = self._save(p, exp.attributions, exp, None, signal=signal, step_ahead=1)
        return [line]

    def _sepsis(self, paths: list[str]) -> list[dict[str, Any]]:
        """Sepsis records, read one by one and scored in one padded pass (as ``vitals sepsis`` does)."""
        t0, read, rows = time.perf_counter(), [], {}
        for path in paths:
            try:
                read.append((Path(path), L.read_sepsis(Path(path), self.spec)))
            except MedAIError as exc:
                rows[path] = [{"file": path, "error": str(exc)}]
        for line, (p, record) in zip(L.sepsis_lines(self.model, self.spec, read), read):
            if self.explain:
                from medai_core.workspaces.vitals.sepsis import explain_hour

                exp = explain_hour(self.model, self.spec, record, record.n_hours - 1, self.explain)
                line["explanation"] = self._save(p, exp.attributions, exp, None, hour=record.n_hours - 1)
            rows[str(p)] = [line]
        seconds = (time.perf_counter() - t0) / max(len(paths), 1)
        return [self._common(r, path, seconds) for path in paths for r in rows[path]]

    def _save(self, p: Path, values: Any, exp: Any, row: int | None, **extra: Any) -> dict[str, Any]:
        stem = self.maps / (map_stem(str(p)) + (f"-row{row}" if row is not None else "") + f".{self.explain}")
        np.save(f"{stem}.npy", np.asarray(values, dtype=np.float32))
        return {"method": self.explain, "target": str(exp.target), "npy": f"{stem}.npy", **extra,
                **{k: round(v, 6) for k, v in exp.diagnostics.items()}}
