"""``python -m medai_core image train-user DATA --out DIR`` and ``image reference --model-dir DIR IMAGES...``.

``train-user`` trains on a folder (or a ZIP) of one sub-folder per class with the Train page's code and writes
a user model folder (``model.pt2``, ``medai-model.json``, ``README.md``, ``heldout.csv``, ``reference.npz``,
``training.json``). Progress goes to stderr (``--quiet``: none); one JSON summary line goes to stdout:
``{"out", "name", "labels", "positive_label", "images", "set_aside", "best_epoch", "temperature", "test": {n,
accuracy, balanced_accuracy, auroc, ece, macro_f1}, "seconds": {read, features, train, reference, export,
total}}``. Exit status 0, or 2 for a set or settings that cannot be used.

``reference`` computes a brought model's OOD reference statistics from images like its training images and
writes ``reference.npz`` into its folder; one JSON line (n, k, threshold) on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_parsers(img) -> None:
    from medai_core.workspaces.training import (
        AUGMENTS,
        FINE_TUNE,
        OPTIMIZERS,
        SIZES,
        TrainSettings,
    )

    d = TrainSettings()
    t = img.add_parser("train-user", help="train your own classifier on a folder of one sub-folder per class; "
                                          "writes a user model folder (see README, 'Train a model in the app')")
    t.add_argument("data", metavar="DATA", help="folder (or .zip) with one sub-folder of images per class")
    t.add_argument("--out", required=True, metavar="DIR", help="model folder to write (must not exist)")
    t.add_argument("--manifest", metavar="CSV", help="path,group[,label] CSV (default: manifest.csv in DATA if any)")
    t.add_argument("--name", default=None, help="model name (default: the --out folder's name)")
    t.add_argument("--backbone", default=d.backbone, help="efficientnet_lite0_imagenet, cxr_pneumonia or busi_effnet")
    t.add_argument("--fine-tune", type=int, default=d.fine_tune, choices=sorted(FINE_TUNE),
                   help="backbone stages trained with the head (0: frozen features; default 0)")
    t.add_argument("--optimizer", default=d.optimizer, choices=sorted(OPTIMIZERS))
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--augment", default=d.augment, choices=sorted(AUGMENTS))
    t.add_argument("--size", type=int, default=d.size, choices=SIZES)
    t.add_argument("--positive-label", default="", help="default: the second class of two (alphabetical)")
    t.add_argument("--intended-use", default=d.intended_use)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.set_defaults(func=train_user_command)
    r = img.add_parser("reference", help="write reference.npz (OOD statistics) into a user model folder from "
                                         "images like its training images")
    r.add_argument("paths", nargs="+", metavar="PATH", help="images or folders (at least 20 recommended)")
    r.add_argument("--model-dir", required=True, metavar="DIR")
    r.set_defaults(func=reference_command)


def train_user_command(args: argparse.Namespace) -> int:
    from medai_core.errors import InputError
    from medai_core.workspaces.training import (
        Event,
        TrainSettings,
        save_folder,
        train_user_model,
    )

    out = Path(args.out)
    if out.exists():
        raise InputError(f"{out} already exists; give a new folder for the model.")
    data = Path(args.data)
    source: bytes | str = data.read_bytes() if data.is_file() else str(data)
    manifest = Path(args.manifest).read_bytes() if args.manifest else None
    settings = TrainSettings(name=args.name or out.name, backbone=args.backbone, optimizer=args.optimizer, lr=args.lr,
                             epochs=args.epochs, batch_size=args.batch_size, augment=args.augment, size=args.size,
                             fine_tune=args.fine_tune, positive_label=args.positive_label,
                             intended_use=args.intended_use, seed=args.seed)
    t0 = time.perf_counter()
    last = [0.0, ""]

    def emit(e: Event) -> None:
        now = time.perf_counter()
        if args.quiet or (e.phase == last[1] and now - last[0] < 1.0 and e.done != e.total):
            return
        last[:] = [now, e.phase]
        extra = (f" loss {e.epoch['train_loss']:.3f}/{e.epoch['val_loss']:.3f} acc "
                 f"{e.epoch['train_acc']:.3f}/{e.epoch['val_acc']:.3f} (train/val)") if e.epoch else ""
        print(f"[{now - t0:6.1f} s] {e.phase} {e.done}/{e.total}{extra}", file=sys.stderr, flush=True)

    r = train_user_model(source, settings, manifest=manifest, emit=emit)
    save_folder(r.files, out)
    summary = {"out": str(out), "name": r.settings.name, "labels": list(r.labels), "positive_label": r.positive_label,
               "images": sum(sum(c.values()) for c in r.split_counts.values()), "set_aside": len(r.set_aside),
               "best_epoch": r.best_epoch, "temperature": round(r.temperature, 4), "test": r.evaluation.summary(),
               "seconds": {k: round(v, 2) for k, v in r.seconds.items()} | {"total": round(time.perf_counter() - t0, 2)}}
    print(json.dumps(summary))
    return 0


def reference_command(args: argparse.Namespace) -> int:
    from medai_core.errors import InputError
    from medai_core.io import load_scan, render, to_gray
    from medai_core.models.user import read_manifest
    from medai_core.models.user_reference import write_reference

    read_manifest(args.model_dir)
    images, failed = [], 0
    for p in _files(args.paths):
        try:
            scan = load_scan(p)
            images.append(to_gray(render(scan, 0, None, use_voi_lut=scan.voi_lut is not None)))
        except InputError as exc:
            failed += 1
            print(f"{p}: {exc}", file=sys.stderr)
    if len(images) < 4:
        raise InputError(f"Reference statistics need at least 4 readable images; got {len(images)}.")
    summary = write_reference(args.model_dir, images)
    print(json.dumps({"model_dir": str(args.model_dir), "unreadable": failed} | summary))
    return 0


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")) if p.is_dir() else [p]
    return out
