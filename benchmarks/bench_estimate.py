"""How good is the time estimate? Predicted (``explain.cost.estimate_seconds``) vs actual seconds for
every shipped model, covered method and a few parameter settings.

Run: ``python benchmarks/bench_estimate.py [--repeats 3] [--quick]``. Actual = median of ``repeats`` runs
after one warm-up; ratio = predicted / actual (1.0 is perfect, < 1 means the page under-promises
the wait). IG runs use ``max_steps = n_steps`` so the first-pass estimate is what is compared; the
estimate's worst case (``seconds_max``) covers the doublings. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from medai_core.explain import cost  # noqa: E402
from medai_core.explain.base import explainer_for, thread_copy  # noqa: E402
from medai_core.models import get_spec, load_model  # noqa: E402


def _cases(quick: bool) -> list[tuple[str, str, Any, str, dict[str, Any], dict[str, Any]]]:
    """(model, modality, input, method, params, extra call kwargs)."""
    from medai_core.io.vitals import load_series
    from medai_core.models.forecaster import CGM_SERIES, ICU_SERIES
    from medai_core.models.support_ftt import encode_records
    from medai_core.workspaces.notes.pipeline import encode_note, load_vocab
    from medai_core.workspaces.records.pipeline import reference_record
    from medai_core.workspaces.vitals.samples import SYNTHETIC_SERIES, synthetic_series_csv
    from medai_core.workspaces.records.samples import synthetic_records
    from medai_core.workspaces.vitals.pipeline import model_inputs

    out = []
    x = torch.rand(1, 1, *get_spec("busi_cnn").input_size, generator=torch.Generator().manual_seed(0))
    out.append(("busi_cnn", "image", x, "gradcam", {"layer": "layer4"}, {}))
    for n in (16, 32, 64) if quick else (16, 32, 64, 128):
        out.append(("busi_cnn", "image", x, "integrated_gradients", {"n_steps": n, "max_steps": n}, {}))
    for n in (8, 16, 32):
        out.append(("busi_cnn", "image", x, "smoothgrad", {"nt_samples": n}, {}))
    for w in (32, 16) if quick else (32, 16, 8):
        out.append(("busi_cnn", "image", x, "occlusion", {"window": w, "stride": w // 2}, {}))

    ftt = load_model("support_ftt")
    rec = encode_records(synthetic_records(1))
    ref = reference_record(thread_copy(ftt))
    for n in (32, 64, 128):
        out.append(("support_ftt", "tabular", rec, "shapley_sampling", {"n_samples": n}, {"reference": ref}))
    for n in (16, 64):
        out.append(("support_ftt", "tabular", rec, "integrated_gradients", {"n_steps": n}, {"reference": ref}))

    spec = get_spec("notes_tfm")
    vocab = load_vocab(spec)
    short = encode_note("Patient with chest pain radiating to the left arm, troponin elevated. " * 6, vocab, spec).ids
    long = encode_note("Patient with chest pain radiating to the left arm, troponin elevated. " * 90, vocab, spec).ids
    for ids in (short, long):
        for n in (8, 16, 32):
            out.append(("notes_tfm", "text", ids, "integrated_gradients", {"n_steps": n, "max_steps": n}, {}))

    for name, series_spec in (("icu_gru", ICU_SERIES), ("cgm_gru", CGM_SERIES)):
        label = next(iter(SYNTHETIC_SERIES[name]))
        inputs = model_inputs(load_model(name), get_spec(name), load_series(synthetic_series_csv(name, label), series_spec))
        for n in (16, 64):
            out.append((name, "series", inputs, "integrated_gradients", {"n_steps": n}, {}))
        out.append((name, "series", inputs, "occlusion", {}, {}))
    return out


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _shape(x: Any) -> str:
    t = x[0] if isinstance(x, tuple) else x
    return "x".join(str(s) for s in t.shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"# Estimated vs actual attribution time, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"budget {cost.attribution_memory_mb():.0f} MB; actual = median of {args.repeats} after warm-up\n")
    print("| model | input | method | params | batch | passes | calibration s | estimated s | worst case s | actual s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {}
    for name, modality, x, method, params, extra in _cases(args.quick):
        model = load_model(name)
        fn, _ = explainer_for(method, modality)
        t0 = time.perf_counter()
        est = cost.estimate_seconds(model, modality, x, method, params)
        calib = time.perf_counter() - t0
        m = thread_copy(model)
        actual = _median_seconds(lambda: fn(m, x, 0, **params, **extra), args.repeats)
        r = est.seconds / actual
        ratios.setdefault(modality, []).append(r)
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "max_steps")
        print(f"| {name} | {_shape(x)} | {method} | {shown} | {est.batch} | {est.passes} | {calib:.2f} | "
              f"{est.seconds:.3f} | {est.seconds_max:.3f} | {actual:.3f} | {r:.2f} |", flush=True)
    every = [r for rs in ratios.values() for r in rs]
    print("\n| modality | cases | median ratio (estimated / actual) | min | max |")
    print("|---|---|---|---|---|")
    for mod, rs in [*ratios.items(), ("all", every)]:
        print(f"| {mod} | {len(rs)} | {statistics.median(rs):.2f} | {min(rs):.2f} | {max(rs):.2f} |")


if __name__ == "__main__":
    main()
