"""Quantile forecasters for vital-sign series: a GRU encoder with temporal attention (any signal set).

Input (see ``prepare_window``): ``x`` (N, L, S) values standardised per signal with the last
observation carried forward (a step before any observation holds the training mean), ``m`` (N, L, S)
1 where a value was observed in that step, ``pad`` (N, L) True for steps before the record starts,
``static`` (N, K). The mask tells the model what was measured and what was carried forward, so
nothing is silently filled in.

Output: (N, H, T, 3) forecasts of the T target signals (the first T of S) for the next H steps, in
the signals' own units, as the 10%, 50% and 90% quantiles. The median is the last observed value plus a
learned change; the 10% and 90% quantiles sit below and above it by learned positive widths, so the
quantiles never cross.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medai_core.models.catalog import (CGM_HISTORY, CGM_HORIZON, CGM_SERIES, CGM_SIGNALS, CGM_SPEC, ICU_HISTORY,  # noqa: F401
                      ICU_HORIZON, ICU_SERIES, ICU_SIGNALS, ICU_SPEC, ICU_TARGETS, QUANTILES)  # (re-exported)
from medai_core.models.spec import ModelSpec


class TemporalAttention(nn.Module):
    """Scaled dot-product attention of the last hidden state over all steps; weights (N, L) sum to 1."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = (self.k(h) @ self.q(h[:, -1]).unsqueeze(-1)).squeeze(-1) / math.sqrt(h.shape[-1])
        w = scores.masked_fill(pad, float("-inf")).softmax(-1)
        return (w.unsqueeze(-1) * h).sum(1), w


class QuantileForecaster(nn.Module):
    def __init__(self, n_signals: int, n_targets: int, n_static: int, horizon: int, hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.n_targets, self.horizon = n_targets, horizon
        self.encoder = nn.GRU(2 * n_signals + 1, hidden, batch_first=True)
        self.attention = TemporalAttention(hidden)
        self.static = nn.Linear(n_static, hidden) if n_static else None
        self.head = nn.Sequential(nn.Linear(2 * hidden + (hidden if n_static else 0) + 2 * n_signals, 2 * hidden),
                                  nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * hidden, horizon * n_targets * 3))
        self.register_buffer("mean", torch.zeros(n_signals))
        self.register_buffer("std", torch.ones(n_signals))
        # per-target factor on the interval half-widths, fitted on validation so 80% intervals cover 80%
        self.register_buffer("width_scale", torch.ones(n_targets))

    def forward_with_attention(self, x: torch.Tensor, m: torch.Tensor, pad: torch.Tensor, static: torch.Tensor
                               ) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        inp = torch.cat([x, m, pad.unsqueeze(-1).float()], -1)
        h, _ = self.encoder(inp)
        ctx, w = self.attention(h, pad)
        # how long ago each signal was last seen (fraction of the window), a cue for uncertainty
        steps = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)
        seen = (m > 0.5).float() * steps.view(1, -1, 1)
        age = (x.shape[1] - 1 - seen.amax(1)) / x.shape[1]
        ever = (m > 0.5).any(1).float()
        feats = [h[:, -1], ctx, x[:, -1], torch.where(ever > 0, age, torch.ones_like(age))]
        if self.static is not None:
            feats.insert(2, torch.relu(self.static(static)))
        feats += self._head_inputs(x, m)
        out = self.head(torch.cat(feats, -1)).view(n, self.horizon, self.n_targets, 3)
        last = x[:, -1, : self.n_targets].unsqueeze(1)  # last observation carried forward (z units)
        med = last + out[..., 1]
        ws = self.width_scale.view(1, 1, -1)
        lo = med - ws * (F.softplus(out[..., 0]) + 1e-3)
        hi = med + ws * (F.softplus(out[..., 2]) + 1e-3)
        z = torch.stack([lo, med, hi], -1)
        mu = self.mean[: self.n_targets].view(1, 1, -1, 1)
        sd = self.std[: self.n_targets].view(1, 1, -1, 1)
        return z * sd + mu, w

    def forward(self, x: torch.Tensor, m: torch.Tensor, pad: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x, m, pad, static)[0]

    def _head_inputs(self, x: torch.Tensor, m: torch.Tensor) -> list[torch.Tensor]:
        return []  # extra inputs to the head (subclasses)


def window_features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Engineered summaries of a window, per signal (N, 5 S): the mean of the last 3 observed values, of the
    observed values in the last 6 and 24 steps (each minus the last value; 0 where none), the least-squares
    slope per step over the observed values of the last 6 steps (0 with fewer than 2), and the share of the
    window's steps with an observation. The same quantities the tree baselines read, for the model's head."""
    obs = (m > 0.5).to(x.dtype)
    last = x[:, -1]
    rank = obs.flip(1).cumsum(1).flip(1)  # 1 for the latest observation, 2 for the one before, ...

    def mean_minus_last(sel: torch.Tensor) -> torch.Tensor:
        k = sel.sum(1)
        return torch.where(k > 0, (x * sel).sum(1) / k.clamp_min(1.0) - last, torch.zeros_like(last))

    recent6 = torch.zeros_like(obs)
    recent6[:, -6:] = obs[:, -6:]
    t = torch.arange(x.shape[1], device=x.device, dtype=x.dtype).view(1, -1, 1)
    k6 = recent6.sum(1)
    tm = (t * recent6).sum(1) / k6.clamp_min(1.0)
    xm = (x * recent6).sum(1) / k6.clamp_min(1.0)
    cov = ((t - tm.unsqueeze(1)) * (x - xm.unsqueeze(1)) * recent6).sum(1)
    var = (((t - tm.unsqueeze(1)) ** 2) * recent6).sum(1)
    slope = torch.where(k6 >= 2, cov / var.clamp_min(1e-6), torch.zeros_like(last))
    return torch.cat([mean_minus_last(obs * (rank <= 3)), mean_minus_last(recent6), mean_minus_last(obs), slope,
                      obs.mean(1)], -1)


class FeatureQuantileForecaster(QuantileForecaster):
    """``QuantileForecaster`` whose head also reads ``window_features`` (recent means, slope, how often each
    signal was measured): the summaries that make gradient-boosted trees strong, next to the GRU's state."""

    def __init__(self, n_signals: int, n_targets: int, n_static: int, horizon: int, hidden: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__(n_signals, n_targets, n_static, horizon, hidden, dropout)
        first = self.head[0]
        self.head[0] = nn.Linear(first.in_features + 5 * n_signals, first.out_features)

    def _head_inputs(self, x: torch.Tensor, m: torch.Tensor) -> list[torch.Tensor]:
        return [window_features(x, m)]


def quantile_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                  quantiles: tuple[float, ...] = QUANTILES, weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Mean pinball loss over observed targets. pred (..., Q), target and mask (...).
    ``weights`` (one per quantile, default equal) weigh the quantiles' losses; they are normalised to mean 1."""
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    diff = target.unsqueeze(-1) - pred
    per_q = torch.maximum(q * diff, (q - 1) * diff)
    if weights is not None:
        w = torch.tensor(weights, dtype=pred.dtype, device=pred.device)
        per_q = per_q * (w / w.mean())
    loss = per_q.mean(-1)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


# ---------------------------------------------------------------- PhysioNet 2012 ICU vitals


def static_vector(static: dict[str, float], spec: ModelSpec, n_steps: int) -> list[float]:
    """ICU statics: age / 100, sex (1 male, 0 female, 0.5 unknown), ICU type one-hot (4), and hours since
    the record began at the forecast origin / 48 (PhysioNet records begin at ICU admission; for an
    upload, its first time stands for admission)."""
    if spec.name != "icu_gru" and not spec.extra.get("icu_static"):
        return []
    age = static.get("Age")
    sex = static.get("Gender")
    icu = static.get("ICUType")
    onehot = [1.0 if icu == k else 0.0 for k in (1, 2, 3, 4)]
    return [(age if age is not None and 0 < age < 120 else 64.0) / 100.0,
            sex if sex in (0.0, 1.0) else 0.5, *onehot, min(n_steps, spec.extra.get("time_cap", 96)) / 48.0]


def build_icu_gru() -> QuantileForecaster:
    return QuantileForecaster(len(ICU_SIGNALS), ICU_TARGETS, 7, ICU_HORIZON)


def build_icu_pool_gru() -> FeatureQuantileForecaster:
    from medai_core.models.catalog import ICU_POOL_HIDDEN, ICU_POOL_SIGNALS

    return FeatureQuantileForecaster(len(ICU_POOL_SIGNALS), ICU_TARGETS, 7, ICU_HORIZON, ICU_POOL_HIDDEN)


# ---------------------------------------------------------------- continuous glucose monitoring


def build_cgm_gru() -> QuantileForecaster:
    return QuantileForecaster(1, 1, 0, CGM_HORIZON)
