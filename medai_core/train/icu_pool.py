"""Train and evaluate the ICU vital-sign forecaster on PhysioNet 2012 and 2019 together; weights and card.

Run: ``python -m medai_core vitals train --model icu_pool_gru --data ../shared/data [--out assets]``.

1. Stays of both sources on one hourly grid of ``ICU_POOL_SIGNALS`` (``medai_core.train.icu_data``).
2. Split by patient per source, seeded: 70% train, 15% validation, 15% test. The 2012 split is
   ``medai_core.train.icu.split_ids`` with icu_gru's seed, so the 2012 test patients are icu_gru's.
3. Windows: up to 24 h of history ending at hour e, targets hours e..e+5 (observed ones only). Training:
   every e at least 6 h after the first row with at least one target hour inside the stay. Evaluation:
   2012 every e from 12 to 42 (as icu_gru); 2019 every e at least 12 h after the first row with the whole
   6 h horizon inside the stay.
4. Baselines on the same test windows: persistence, ridge, gradient-boosted trees (``icu_baselines``),
   the trees fitted per source on that source's training patients.
5. GRU + temporal attention + engineered window features in the head, pinball loss on the 10/50/90%
   quantiles (median weighted 3x), AdamW with a one-cycle schedule, the best epoch on validation loss kept;
   interval widths then scaled per signal on validation so 80% intervals cover 80% there.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medai_core.models.forecaster import FeatureQuantileForecaster, quantile_loss
from medai_core.models.spec import ModelSpec, sha256_file
from medai_core.train import icu_baselines as base
from medai_core.train.icu import SEED, split_ids
from medai_core.train.icu_data import (Stays, WindowSource, cached, concat_stays, cut_points, load_psv_stays,
                                       load_txt_stays, subset)
from medai_core.train.loop import fit_early_stopping

SOURCES = {"2012": "physionet2012/set-a", "2019": "physionet2019/training_setB"}
SOURCE_TEXT = {"2012": "PhysioNet/Computing in Cardiology Challenge 2012, set-a (Silva et al. 2012), ODC-By 1.0",
               "2019": "PhysioNet/Computing in Cardiology Challenge 2019, training set B (Reyna et al. 2020), one "
                       "hospital system; open access on PhysioNet, recalled as CC BY 4.0 (confirm before redistributing)"}
EVAL = {"2012": 12, "2019": 12}  # hours of history before the first evaluated cut point
TRAIN_MIN_HISTORY = 6


def load_sources(data_dir: Path, spec: ModelSpec, sources: tuple[str, ...] = ("2012", "2019"),
                 cache_dir: Path | None = None, log: Callable[[str], None] | None = print) -> dict[str, Stays]:
    """Each source's stays (``cache_dir``: keep the parsed grids between runs, development only)."""
    series = spec.extra["series"]
    loaders = {"2012": load_txt_stays, "2019": load_psv_stays}
    return {s: cached(Path(cache_dir) / f"{spec.name}_{s}.npz" if cache_dir else None,
                      lambda s=s: loaders[s](Path(data_dir) / SOURCES[s], series, spec, log)) for s in sources}


def split_sources(stays: dict[str, Stays], seed: int = SEED) -> dict[str, dict[str, np.ndarray]]:
    return {s: split_ids(len(st["ids"]), seed) for s, st in stays.items()}


def standardisation(train: Stays) -> tuple[np.ndarray, np.ndarray]:
    v = train["values"]
    seen = (~np.isnan(v)).sum(0) > 1
    with np.errstate(invalid="ignore"):
        mean = np.where(seen, np.nanmean(np.where(seen, v, 0.0), 0), 0.0).astype(np.float32)
        std = np.where(seen, np.nanstd(np.where(seen, v, 0.0), 0), 1.0).astype(np.float32)
    std[~(std > 0)] = 1.0
    return mean, std


class Windows:
    """A ``WindowSource`` with its (stay, end) list; ``batch(idx)`` gathers windows ``idx`` of the list."""

    def __init__(self, stays: Stays, spec: ModelSpec, mean: np.ndarray, std: np.ndarray, min_history: int,
                 whole_horizon: bool, source: str = "") -> None:
        e = spec.extra
        self.src = WindowSource(stays, mean, std, e["history"], e["horizon"], e["n_targets"], e.get("time_cap", 96))
        self.stay, self.end = cut_points(stays, min_history, e["horizon"], whole_horizon)
        self.ids, self.source = stays["ids"], source

    def __len__(self) -> int:
        return len(self.stay)

    def batch(self, idx: np.ndarray | slice) -> dict[str, np.ndarray]:
        return self.src.gather(self.stay[idx], self.end[idx])

    def chunks(self, size: int = 8192):  # noqa: ANN201 - a generator of batches
        for i in range(0, len(self), size):
            yield self.batch(slice(i, i + size))

    def targets(self) -> dict[str, np.ndarray]:
        """y, ymask, last for every window (no inputs)."""
        out: dict[str, list] = {"y": [], "ymask": [], "last": []}
        for b in self.chunks():
            for k in out:
                out[k].append(b[k])
        return {k: np.concatenate(v) for k, v in out.items()}


def _tensors(b: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(b[k])) for k in ("x", "m", "pad", "static"))


@torch.no_grad()
def predict(model: torch.nn.Module, w: Windows) -> np.ndarray:
    """(N, H, T, 3) quantile forecasts of every window."""
    model.eval()
    return np.concatenate([model(*_tensors(b)).numpy() for b in w.chunks(4096)])


def width_scale(pred: np.ndarray, t: dict[str, np.ndarray], target: float = 0.8) -> np.ndarray:
    """Per-signal factor on the interval half-widths (``pred`` made with factor 1) giving ``target`` coverage."""
    out = []
    for j in range(pred.shape[2]):
        ok = t["ymask"][:, :, j]
        y, med = t["y"][:, :, j][ok], pred[:, :, j, 1][ok]
        lo_w, hi_w = med - pred[:, :, j, 0][ok], pred[:, :, j, 2][ok] - med
        need = np.where(y >= med, (y - med) / np.maximum(hi_w, 1e-6), (med - y) / np.maximum(lo_w, 1e-6))
        out.append(float(np.quantile(need, target)))
    return np.array(out, np.float32)


def evaluate(q: np.ndarray, t: dict[str, np.ndarray], stay: np.ndarray, names: tuple[str, ...],
             baselines: dict[str, np.ndarray] | None = None, n_boot: int = 1000, seed: int = SEED) -> dict[str, Any]:
    """MAE / persistence per signal and its mean over signals for the model (``q``: quantiles) and each
    baseline (medians), 80% coverage, and 95% bootstrap intervals over patients (``stay``) of the mean
    ratios and of the model's ratio minus each baseline's."""
    meds = {"model": q[..., 1], **(baselines or {})}
    uniq, inv = np.unique(stay, return_inverse=True)
    n_st, T = len(uniq), len(names)
    err = {k: np.zeros((n_st, T)) for k in [*meds, "persistence"]}
    cnt = np.zeros((n_st, T))
    res: dict[str, Any] = {"signals": {}, "n_windows": int(len(stay)), "n_patients": int(n_st)}
    for j, name in enumerate(names):
        ok = t["ymask"][:, :, j] & ~np.isnan(t["last"][:, j])[:, None]
        for k, p in meds.items():
            ok &= ~np.isnan(p[:, :, j])
        y = t["y"][:, :, j]
        pers = np.broadcast_to(t["last"][:, j][:, None], ok.shape)
        rows = np.broadcast_to(inv[:, None], ok.shape)[ok]
        cnt[:, j] = np.bincount(rows, minlength=n_st)
        row: dict[str, Any] = {"n": int(ok.sum())}
        for k, p in [*((k, p[:, :, j]) for k, p in meds.items()), ("persistence", pers)]:
            e = np.abs(p - y)[ok]
            err[k][:, j] = np.bincount(rows, weights=e, minlength=n_st)
            row[f"mae_{k}"] = float(e.mean())
        for k in meds:
            row[f"ratio_{k}"] = row[f"mae_{k}"] / row["mae_persistence"]
        row["ratio_by_hour"] = [float(np.abs(q[:, h, j, 1] - y[:, h])[ok[:, h]].mean()
                                      / np.abs(pers[:, h] - y[:, h])[ok[:, h]].mean())
                                for h in range(q.shape[1])]
        lo, hi = q[:, :, j, 0][ok], q[:, :, j, 2][ok]
        row["coverage80"] = float(((y[ok] >= lo) & (y[ok] <= hi)).mean())
        row["mean_width80"] = float((hi - lo).mean())
        res["signals"][name] = row

    def mean_ratio(k: str, sel: np.ndarray | slice = slice(None)) -> float:
        return float(np.mean(err[k][sel].sum(0) / err["persistence"][sel].sum(0)))

    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n_st, n_st) for _ in range(n_boot)]
    for k in meds:
        res[f"mean_ratio_{k}"] = mean_ratio(k)
        if not n_boot:
            continue
        boot = np.array([mean_ratio(k, d) for d in draws])
        res[f"mean_ratio_{k}_ci95"] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
        if k != "model":
            diff = np.array([mean_ratio("model", d) - mean_ratio(k, d) for d in draws])
            res[f"model_minus_{k}_ci95"] = [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))]
    res["mean_coverage80"] = float(np.mean([r["coverage80"] for r in res["signals"].values()]))
    return res


def _features(w: Windows, mean: np.ndarray, std: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    f, s = [], []
    for b in w.chunks(20000):
        f.append(base.engineered(b, mean, std, T))
        s.append(b["static"])
    return np.concatenate(f), np.concatenate(s)


def run_baselines(train: Windows, tests: dict[str, Windows], mean: np.ndarray, std: np.ndarray, spec: ModelSpec,
                  seed: int, log: Callable[[str], None] | None = print, tree_iter: int = 400
                  ) -> dict[str, dict[str, np.ndarray]]:
    """Ridge and tree medians (N, H, T) for each of ``tests``, fitted on ``train``'s windows."""
    T, H = spec.extra["n_targets"], spec.extra["horizon"]
    ftr, sttr = _features(train, mean, std, T)
    ytr = train.targets()
    trees = base.fit_trees(ftr, sttr, ytr, T, H, max_iter=tree_iter, seed=seed, log=log)
    out = {}
    for name, w in tests.items():
        fte, stte = _features(w, mean, std, T)
        out[name] = {"ridge": base.ridge_forecast(ftr, ytr, fte, T, H), "trees": base.predict_trees(trees, fte, stte, H)}
    return out


def train_pool(data_dir: Path, out_dir: Path, spec: ModelSpec, *, sources: tuple[str, ...] = ("2012", "2019"),
               epochs: int = 10, seed: int = SEED, hidden: int = 64, lr: float = 2e-3, weight_decay: float = 1e-3,
               dropout: float = 0.2, batch_size: int = 512, median_weight: float = 3.0, patience: int = 20,
               stride_2019: int = 2, loss_scale: str = "persistence", tree_iter: int = 400,
               cache_dir: Path | None = None, baselines: bool = True,
               log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train ``spec``'s forecaster on ``sources``; writes weights and ``<card_json>`` (``write_card``: the card).
    Every source is evaluated on its own held-out patients."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stays = load_sources(Path(data_dir), spec, ("2012", "2019"), cache_dir, log)
    split = split_sources(stays, seed)
    train = concat_stays([subset(stays[s], split[s]["train"]) for s in sources])
    mean, std = standardisation(train)
    names = spec.labels
    T, H = spec.extra["n_targets"], spec.extra["horizon"]
    tr = Windows(train, spec, mean, std, TRAIN_MIN_HISTORY, False)
    # 2019 stays are long and neighbouring hours' windows nearly the same: every ``stride_2019``-th cut point
    keep = (train["source"][tr.stay] != "2019") | (tr.end % stride_2019 == 0)
    tr.stay, tr.end = tr.stay[keep], tr.end[keep]
    parts = {(s, k): Windows(subset(stays[s], split[s][k]), spec, mean, std, EVAL[s], True, s)
             for s in stays for k in ("val", "test")}
    model = FeatureQuantileForecaster(len(spec.extra["series"].signals), T, tr.src.static.shape[1] + 1, H, hidden, dropout)
    model.mean.copy_(torch.from_numpy(mean))
    model.std.copy_(torch.from_numpy(std))
    if loss_scale == "persistence":  # each signal's loss in units of its persistence error: the metric's weighting
        t = tr.targets()
        ok = t["ymask"] & ~np.isnan(t["last"])[:, None, :]
        scale = np.array([np.abs(t["y"][:, :, j] - t["last"][:, None, j])[ok[:, :, j]].mean() for j in range(T)], np.float32)
    else:  # standard deviations
        scale = std[:T]
    zscale = torch.from_numpy(scale).view(1, 1, -1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(tr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-n // batch_size), pct_start=0.15)

    def loss_of(b: dict[str, np.ndarray]) -> torch.Tensor:
        pred = model(*_tensors(b))
        return quantile_loss(pred / zscale.unsqueeze(-1), torch.from_numpy(b["y"]) / zscale,
                             torch.from_numpy(b["ymask"]).float(), weights=(1.0, median_weight, 1.0))

    val_sets = [parts[(s, "val")] for s in sources]

    def val_loss() -> float:
        return float(np.mean([float(loss_of(b)) for w in val_sets for b in w.chunks(8192)]))

    history, best_epoch = fit_early_stopping(model, lambda idx: loss_of(tr.batch(idx)), val_loss, n, opt=opt,
                                             sched=sched, epochs=epochs, batch_size=batch_size, patience=patience,
                                             rng=rng, log=log)
    model.width_scale.fill_(1.0)
    val_pred = np.concatenate([predict(model, w) for w in val_sets])
    val_t = {k: np.concatenate([w.targets()[k] for w in val_sets]) for k in ("y", "ymask", "last")}
    model.width_scale.copy_(torch.from_numpy(width_scale(val_pred, val_t)))
    results: dict[str, Any] = {"model": spec.name, "sources": list(sources),
                               "signals": [s.name for s in spec.extra["series"].signals],
                               "targets": list(names), "data": {}, "val": {}, "test": {}}
    bl = {}
    for s in stays if baselines else ():
        keep = Path(cache_dir) / f"{spec.name}_baselines_{s}.npz" if cache_dir else None
        if keep is not None and keep.exists():  # development: the baselines do not depend on the model
            with np.load(keep) as z:
                got = {k: {b: z[f"{k}_{b}"] for b in ("ridge", "trees")} for k in ("val", "test")}
        else:
            trs = Windows(subset(stays[s], split[s]["train"]), spec, mean, std, TRAIN_MIN_HISTORY, False, s)
            got = run_baselines(trs, {"val": parts[(s, "val")], "test": parts[(s, "test")]}, mean, std, spec, seed, log,
                                tree_iter)
            if keep is not None:
                np.savez(keep, **{f"{k}_{b}": v for k, d in got.items() for b, v in d.items()})
        bl.update({(s, k): v for k, v in got.items()})
    for (s, k), w in parts.items():
        results[k][s] = evaluate(predict(model, w), w.targets(), w.stay, names, bl.get((s, k)))
        if log:
            r = results[k][s]
            log(f"{k} {s}: model {r['mean_ratio_model']:.4f} " + " ".join(
                f"{b} {r[f'mean_ratio_{b}']:.4f}" for b in ("ridge", "trees") if f"mean_ratio_{b}" in r)
                + f" coverage {r['mean_coverage80']:.3f}")
    results["test"]["n"] = int(sum(len(parts[(s, "test")]) for s in stays))  # windows, both sources
    for s, st in stays.items():
        results["data"][s] = {"source": SOURCE_TEXT[s], "patients": int(len(st["ids"])),
                              "split": {k: int(len(v)) for k, v in split[s].items()},
                              "windows": {k: int(len(parts[(s, k)])) for k in ("val", "test")},
                              "observed_share": {sig.name: float((~np.isnan(st["values"][:, j])).mean())
                                                 for j, sig in enumerate(spec.extra["series"].signals)},
                              "test_ids": st["ids"][split[s]["test"]].tolist()}
    results["training"] = {"seed": seed, "hidden": hidden, "lr": lr, "weight_decay": weight_decay, "dropout": dropout,
                           "batch_size": batch_size, "median_weight": median_weight, "epochs": epochs,
                           "stride_2019": stride_2019, "loss_scale": loss_scale, "loss_scale_values": scale.tolist(),
                           "epochs_run": len(history), "best_epoch": best_epoch, "train_windows": int(n),
                           "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
    results["history"] = history
    results["width_scale"] = model.width_scale.tolist()
    torch.save(model.state_dict(), out_dir / spec.weights)
    results["weights_sha256"] = sha256_file(out_dir / spec.weights)
    (out_dir / spec.card_json).write_text(json.dumps(results, indent=1))
    return results
