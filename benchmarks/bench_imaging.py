"""Imaging speed: median time per scan for decode + predict, Grad-CAM, IG, SmoothGrad, occlusion.

Run: ``python benchmarks/bench_imaging.py [--repeats 15] [--markdown]``. Warm-up runs are discarded;
medians are reported (this machine is 2 noisy cores). Not a test.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import print_table  # noqa: E402

from medai_core.workspaces.imaging.pipeline import explain, predict, prepare_input  # noqa: E402
from medai_core.io import load_scan  # noqa: E402
from medai_core.models import get_spec, load_model  # noqa: E402
from medai_core.workspaces.imaging.samples import sample_path  # noqa: E402


def _png() -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = (np.clip(0.4 * rng.rayleigh(0.8, (256, 256)), 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    import torch

    spec, model = get_spec("busi_cnn"), load_model("busi_cnn")
    png = _png()
    dcm = sample_path("Ultrasound, RGB (US1)").read_bytes()
    x = prepare_input(load_scan(png), spec)
    rows = [
        ("decode PNG 256x256 + predict", lambda: predict(model, spec, prepare_input(load_scan(png), spec))),
        ("decode DICOM US 640x480 RGB + predict", lambda: predict(model, spec, prepare_input(load_scan(dcm), spec))),
        ("predict only (model input ready)", lambda: predict(model, spec, x)),
        ("Grad-CAM", lambda: explain(model, spec, x, "gradcam", "malignant")),
        ("Integrated Gradients, 64 steps, doubled while delta > 1%", lambda: explain(model, spec, x, "integrated_gradients", "malignant")),
        ("SmoothGrad, 16 samples", lambda: explain(model, spec, x, "smoothgrad", "malignant")),
        ("Occlusion, 16 px window, stride 8", lambda: explain(model, spec, x, "occlusion", "malignant")),
    ]
    print_table(f"# busi_cnn on CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} after warm-up", rows, args.repeats)


if __name__ == "__main__":
    main()
