"""Training in the app: time to train a 1,000-image, 2-class set on this machine, against a plain PyTorch loop.

Run: ``python benchmarks/bench_train_user.py [--n 1000] [--repeats 3] [--fine-tune 0]``. The set is ``--n``
chest films of ``$MEDAI_DATA_DIR/cxr_pneumonia`` (or ``../shared/data/cxr_pneumonia``), half NORMAL, half
PNEUMONIA, with the data set's patients as groups; a temporary folder of symbolic links (nothing copied into the
project). Not a test.

Rows (medians over ``--repeats`` runs, every phase included: reading and decoding the JPEGs, features, epochs,
OOD reference, ``torch.export``):
1. ``train_user_model`` with the Train page's defaults (ImageNet EfficientNet-Lite0 frozen, 224 x 224, horizontal
   flips, Adam, 30 epochs), the issue's bar being 2 minutes on 2 CPU cores;
2. the plain baseline: one forward pass of the same backbone, unfused, over the same decoded images (batches of
   32, no augmentation, no training) -- the least any feature-based training must spend. The ratio 1/2 is the
   figure that carries over to another machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_set(data: Path, n: int, folder: Path) -> None:
    import pandas as pd

    man = pd.read_csv(data / "manifest.csv")
    rows = []
    for label, sub in (("normal", "NORMAL"), ("pneumonia", "PNEUMONIA")):
        part = man[man["file"].str.startswith(sub + "/")].sample(n // 2, random_state=0)
        (folder / label).mkdir(parents=True)
        for f, patient in zip(part["file"], part["patient"]):
            (folder / label / Path(f).name).symlink_to(data / f)
            rows.append({"path": f"{label}/{Path(f).name}", "group": patient})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


def plain_forward(folder: Path, size: int) -> float:
    import numpy as np
    import torch

    from medai_core.models.effnet import EffNetClassifier
    from medai_core.workspaces.training.data import load_image_set

    t0 = time.perf_counter()
    data = load_image_set(str(folder), size)
    net = EffNetClassifier(2).load_pretrained().eval()
    with torch.inference_mode():
        for a in range(0, len(data.images), 32):
            x = torch.from_numpy(data.images[a:a + 32].astype(np.float32) / 255.0)[:, None]
            net.features(x)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fine-tune", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    from medai_core.workspaces.training import (
        TrainSettings,
        estimate_seconds,
        train_user_model,
    )

    data = Path(os.environ.get("MEDAI_DATA_DIR", ROOT.parent / "shared" / "data")) / "cxr_pneumonia"
    settings = TrainSettings(name="bench", fine_tune=args.fine_tune, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "set"
        make_set(data, args.n, folder)
        plan = estimate_seconds(settings, args.n)
        print(f"estimate before start: {sum(plan.values()):.1f} s {({k: round(v, 1) for k, v in plan.items()})}", flush=True)
        runs, base = [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            r = train_user_model(str(folder), settings)
            runs.append((time.perf_counter() - t0, r))
            print(f"run {i + 1}: {runs[-1][0]:.1f} s {({k: round(v, 1) for k, v in r.seconds.items()})} "
                  f"test {r.evaluation.summary()}", flush=True)
            base.append(plain_forward(folder, settings.size))
            print(f"plain forward {i + 1}: {base[-1]:.1f} s", flush=True)
    total = statistics.median(t for t, _ in runs)
    plain = statistics.median(base)
    print(f"\n| work ({args.n} images, fine_tune={args.fine_tune}) | median s |\n|---|---|")
    print(f"| train_user_model (all phases) | {total:.1f} |")
    print(f"| plain forward pass (decode + unfused backbone) | {plain:.1f} |")
    print(f"| ratio | {total / plain:.2f} |")


if __name__ == "__main__":
    main()
