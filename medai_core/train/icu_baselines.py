"""Baselines for the ICU vital-sign forecasters, on the same windows as the model.

* persistence: the last observed value (the denominator of every ratio);
* ridge: per (target signal, hour ahead), on that signal's engineered features;
* gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``, absolute-error loss): one per
  target signal with the hour ahead as a feature, on every signal's engineered features and the statics,
  predicting the change from the last value.

Engineered features per signal (``engineered``): last value, mean of the last 3 observed values, mean of
the observed values in the last 6 and 24 hours, least-squares slope over the last 6 hours, hours since the
last reading and the number of readings in the window. In the signal's units for the targets, standardised
for the other inputs; NaN where undefined (the trees take NaN as missing; ridge gets the last value).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

N_FEATURES = 7  # per signal, see ``engineered``


def engineered(w: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray, n_targets: int) -> np.ndarray:
    """(N, S, 7) features of gathered windows (``icu_data.WindowSource.gather``)."""
    x = w["x"].astype(np.float64)
    x[:, :, :n_targets] = x[:, :, :n_targets] * std[:n_targets] + mean[:n_targets]
    m = w["m"] > 0.5
    n, L, s = x.shape
    steps = np.arange(L)[None, :, None]
    ever = m.any(1)
    last = np.where(ever, x[:, -1], np.nan)
    rank = np.cumsum(m[:, ::-1], 1)[:, ::-1]

    def mean_of(sel: np.ndarray) -> np.ndarray:
        k = sel.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(k > 0, (x * sel).sum(1) / k, np.nan)

    r6 = m & (steps >= L - 6)
    k6 = r6.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = (steps * r6).sum(1) / k6
        xm = (x * r6).sum(1) / k6
        cov = ((steps - tm[:, None]) * (x - xm[:, None]) * r6).sum(1)
        var = (((steps - tm[:, None]) ** 2) * r6).sum(1)
        slope = np.where(k6 >= 2, cov / np.maximum(var, 1e-9), np.nan)
    since = np.where(ever, L - 1 - np.where(m, steps, -1).max(1), np.nan)
    return np.stack([last, mean_of(m & (rank <= 3)), mean_of(r6), mean_of(m), slope, since, m.sum(1)],
                    -1).astype(np.float32)


def ridge_forecast(ftr: np.ndarray, ytr: dict[str, np.ndarray], fte: np.ndarray, n_targets: int, horizon: int
                   ) -> np.ndarray:
    """Median forecasts (N, H, T) of per-(signal, hour) ridge regressions on the signal's own features
    (missing ones replaced by the last value, hours since the last reading by 24)."""
    from sklearn.linear_model import Ridge

    def own(f: np.ndarray, t: int) -> np.ndarray:
        g = f[:, t, :6].copy()
        for j in range(1, 5):
            g[:, j] = np.where(np.isnan(g[:, j]), g[:, 0] if j < 4 else 0.0, g[:, j])
        g[:, 5] = np.nan_to_num(g[:, 5], nan=24.0)
        return g

    out = np.full((len(fte), horizon, n_targets), np.nan, np.float32)
    for t in range(n_targets):
        gtr, gte = own(ftr, t), own(fte, t)
        ok_tr, ok_te = ~np.isnan(gtr[:, 0]), ~np.isnan(gte[:, 0])
        for h in range(horizon):
            sel = ok_tr & ytr["ymask"][:, h, t]
            r = Ridge(alpha=1.0).fit(gtr[sel], ytr["y"][sel, h, t])
            out[ok_te, h, t] = r.predict(gte[ok_te])
    return out


def tree_rows(f: np.ndarray, static: np.ndarray, t: int, horizon: int) -> np.ndarray:
    """Design matrix for target ``t``: every signal's features, statics, then the hour ahead (rows: window-major,
    ``horizon`` rows per window)."""
    base = np.concatenate([f.reshape(len(f), -1), static], 1)
    rep = np.repeat(base, horizon, 0)
    return np.concatenate([rep, np.tile(np.arange(1, horizon + 1), len(f))[:, None]], 1).astype(np.float32)


def fit_trees(ftr: np.ndarray, str_: np.ndarray, ytr: dict[str, np.ndarray], n_targets: int, horizon: int, *,
              max_rows: int = 300_000, max_iter: int = 400, seed: int = 0,
              log: Callable[[str], None] | None = print) -> list:
    """One ``HistGradientBoostingRegressor`` per target signal (absolute-error loss, 10% of the rows held
    out for early stopping), on at most ``max_rows`` (window, hour) rows with an observed target. Returns
    (model, columns it reads) per target: constant or empty columns (a signal one source lacks) are left out."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    models = []
    for t in range(n_targets):
        ok = ytr["ymask"][:, :, t] & ~np.isnan(ftr[:, t, 0])[:, None]
        win, hour = np.nonzero(ok)
        if len(win) > max_rows:
            keep = np.sort(rng.choice(len(win), max_rows, replace=False))
            win, hour = win[keep], hour[keep]
        xrows = np.concatenate([ftr[win].reshape(len(win), -1), str_[win], (hour + 1)[:, None]], 1).astype(np.float32)
        keep = np.array([len(np.unique(c[~np.isnan(c)])[:2]) > 1 for c in xrows.T])  # no constant or empty column
        xrows = xrows[:, keep]
        target = ytr["y"][win, hour, t] - ftr[win, t, 0]
        hgb = HistGradientBoostingRegressor(loss="absolute_error", learning_rate=0.1, max_iter=max_iter, max_leaf_nodes=63,
                                            min_samples_leaf=50, l2_regularization=1.0, early_stopping=True,
                                            validation_fraction=0.1, n_iter_no_change=20, random_state=seed)
        models.append((hgb.fit(xrows, target), keep))
        if log:
            log(f"trees: target {t}: {len(win):,} rows, {hgb.n_iter_} iterations")
    return models


def predict_trees(models: list, f: np.ndarray, static: np.ndarray, horizon: int) -> np.ndarray:
    """Median forecasts (N, H, T) of ``fit_trees`` models (NaN where the signal was never observed)."""
    out = np.full((len(f), horizon, len(models)), np.nan, np.float32)
    for t, (hgb, keep) in enumerate(models):
        ok = ~np.isnan(f[:, t, 0])
        rows = tree_rows(f[ok], static[ok], t, horizon)[:, keep]
        out[ok, :, t] = hgb.predict(rows).reshape(-1, horizon) + f[ok, t, 0][:, None]
    return out
