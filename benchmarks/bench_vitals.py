"""Vital-signs speed: forecast one stay, 4,000 stays in one batch, explain one forecast.

Run: ``python benchmarks/bench_vitals.py [--repeats 9]``. Inputs are synthetic stays (seeded). Not a test.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import print_table  # noqa: E402

from medai_core.workspaces.vitals import pipeline as V  # noqa: E402
from medai_core.io.vitals import load_series, to_series  # noqa: E402
from medai_core.models import get_spec, load_model  # noqa: E402
from medai_core.models.forecaster import ICU_SERIES, static_vector  # noqa: E402
from medai_core.workspaces.vitals.samples import synthetic_icu_case  # noqa: E402


def make_batch_4000(spec, model):  # noqa: ANN001, ANN201 - the forecaster's spec and module
    """Forecast 4,000 stays in one batch (windows built from 60 ready synthetic series, then one model call)."""
    many = [to_series(synthetic_icu_case(("stable", "deteriorating", "sparse")[i % 3], seed=i).astype(str), ICU_SERIES)
            for i in range(60)]

    def batch_4000() -> None:
        xs, ms, pads, sts = [], [], [], []
        for i in range(4000):
            s = many[i % len(many)]
            x, m, p = V.window_arrays(s.values, s.n_steps, spec.extra["history"], model.mean.numpy(), model.std.numpy())
            xs.append(x), ms.append(m), pads.append(p), sts.append(static_vector(s.static, spec, s.n_steps))
        with torch.inference_mode():
            model(torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ms)), torch.from_numpy(np.stack(pads)),
                  torch.tensor(sts, dtype=torch.float32))

    return batch_4000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    spec, model = get_spec("icu_gru"), load_model("icu_gru")
    csv = synthetic_icu_case("deteriorating").to_csv(index=False).encode()
    series = load_series(csv, ICU_SERIES)
    batch_4000 = make_batch_4000(spec, model)

    rows = [
        ("read CSV + forecast one stay (24 h history, 6 h, 3 quantiles)", lambda: V.forecast(model, spec, load_series(csv, ICU_SERIES))),
        ("forecast one stay (series ready)", lambda: V.forecast(model, spec, series)),
        ("forecast 4,000 stays in one batch (windows built from ready series)", batch_4000),
        ("explain one forecast: Integrated Gradients, 64 steps", lambda: V.explain_forecast(model, spec, series, "MAP", 6)),
        (f"explain one forecast: occlusion of 24 x {len(ICU_SERIES.signals)} values", lambda: V.explain_forecast(model, spec, series, "MAP", 6, "occlusion")),
    ]
    print_table(f"# icu_gru on CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} after warm-up", rows, args.repeats)


if __name__ == "__main__":
    main()
