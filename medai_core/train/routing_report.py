"""How well the router picks the model: every routed model's shipped weights on the test images of each, and on
scans that none of them reads (every DICOM pydicom and pydicom-data ship, and two photographs).

Run after training: ``python -m medai_core.train.routing_report [--data ../shared/data] [--out assets]``. Writes
``routing.json`` (counts and every reference file's verdict) and prints a markdown table, which the model cards quote.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from medai_core.models import get_spec, load_model, read_card
from medai_core.models.spec import assets_dir

ROUTED_TEST_SETS = {"cxr_pneumonia": "cxr_pneumonia", "busi_effnet": "busi"}


def routing_report(data_dir: Path) -> dict[str, Any]:
    from medai_core.io import load_scan
    from medai_core.workspaces.imaging.routing import route_scan, routed_models
    from medai_core.workspaces.imaging.samples import reference_scans

    models: dict[str, Any] = {}

    def model_for(name: str) -> Any:
        if name not in models:
            models[name] = load_model(name)
        return models[name]

    names = routed_models()
    out: dict[str, Any] = {"models": names, "test_sets": {}, "reference": []}
    for name, folder in ROUTED_TEST_SETS.items():
        files = read_card(name)["test_files"]
        chosen: Counter[str] = Counter()
        flagged = 0
        for f in files:
            r = route_scan(load_scan(Path(data_dir) / folder / f), model_for)
            chosen[r.model] += 1
            flagged += int(r.prediction.ood)
        out["test_sets"][name] = {"n": len(files), "chosen": dict(chosen), "flagged_by_chosen": flagged,
                                  "correct_rate": chosen[name] / len(files)}
    seen: set[tuple[int, ...]] = set()
    for p, scan, _ in reference_scans():
        key = tuple(int(v) for v in (scan.frames[0].astype("float32").ravel()[::997] * 7).astype("int64")[:64])
        if key in seen:
            continue  # the same picture in another encoding counts once
        seen.add(key)
        r = route_scan(scan, model_for)
        out["reference"].append({"file": p.name, "modality": scan.modality or "photo", "model": r.model,
                                 "flagged": bool(r.prediction.ood),
                                 "scores": {c.name: round(c.distance, 3) for c in r.candidates}})
    by: dict[str, dict[str, int]] = {}
    for row in out["reference"]:
        d = by.setdefault(row["modality"], {"n": 0, "flagged": 0})
        d["n"] += 1
        d["flagged"] += int(row["flagged"])
    out["reference_by_modality"] = by
    return out


def markdown(rep: dict[str, Any]) -> str:
    rows = [f"| {get_spec(n).extra.get('kind', n)} test images ({n}) | {d['n']} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(d["chosen"].items())) + f" | {d['correct_rate']:.1%} |"
            for n, d in rep["test_sets"].items()]
    rows += [f"| reference {m} | {d['n']} | flagged by every model: {d['flagged']} | {d['flagged'] / d['n']:.0%} |"
             for m, d in sorted(rep["reference_by_modality"].items())]
    return ("## The right model for each scan\n"
            "Without a chosen model the app and `image predict` score a scan with every routed model and keep the one "
            "whose OOD guard accepts it (DICOM Modality / BodyPartExamined break ties); a scan every guard rejects stays "
            "flagged. Measured with the shipped weights (`python -m medai_core.train.routing_report`):\n\n"
            "| scans | n | chosen | right |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    from medai_core.train.heldout import default_data_dir

    ap = argparse.ArgumentParser(prog="python -m medai_core.train.routing_report", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rep = routing_report(args.data or default_data_dir())
    out = args.out or assets_dir()
    (Path(out) / "routing.json").write_text(json.dumps(rep, indent=1))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
