"""Sepsis early warning (PhysioNet/CinC Challenge 2019 task): a causal GRU with attention over past hours.

At every hour t of an ICU stay the model gives the risk that sepsis (Sepsis-3) will be clinically
recognised within the next 6 hours, from the rows up to t only. ``SepsisLabel`` is the target, never an input.

Inputs per hour (``sepsis_features``), built from the 34 hourly variables of a PhysioNet 2019 record:
- the value, carried forward from its last measurement, standardised with the training mean and SD (for
  the heavily skewed labs, ``log_vars``, of log(1 + value)); 0 = the training mean before the first one;
- a mask, 1 where the variable was measured in that hour;
- the hours since it was last measured (capped at ``MAX_GAP`` hours, and ``MAX_GAP`` before the first);
- how often it has been measured so far (log scale): how closely a patient is watched is itself a signal;
- demographics and time: age, sex, unit (medical / surgical / unknown), hours from hospital to ICU
  admission, hours in the ICU.
Everything is a function of rows <= t, so the risk at t is causal; the GRU runs forward only and the
attention of hour t reaches back at most ``ATTENTION_HOURS`` hours, never forward.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from medai_core.models.catalog import SEPSIS_VARIABLES

MAX_GAP = 48.0
ATTENTION_HOURS = 48
N_VARS = len(SEPSIS_VARIABLES)
N_FEATURES = 4 * N_VARS + 7


def carry_forward(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, V) values with NaN -> (filled, observed, hours since last observation), all (T, V).

    Step t uses steps <= t only. Before the first observation ``filled`` is NaN and the gap is ``MAX_GAP``."""
    t, v = values.shape
    obs = ~np.isnan(values)
    idx = np.where(obs, np.arange(t)[:, None], -1)
    last = np.maximum.accumulate(idx, axis=0)
    filled = np.where(last >= 0, values[np.maximum(last, 0), np.arange(v)[None, :]], np.nan)
    gap = np.where(last >= 0, np.arange(t)[:, None] - last, MAX_GAP).astype(np.float32)
    return filled.astype(np.float32), obs, np.minimum(gap, MAX_GAP)


def static_features(static: np.ndarray) -> np.ndarray:
    """(T, 6) columns ``SEPSIS_STATIC`` (Age, Gender, Unit1, Unit2, HospAdmTime, ICULOS) -> (T, 7) features."""
    age, sex, u1, u2, adm, los = (static[:, i] for i in range(6))
    age = np.where((age > 0) & (age < 120), age, 62.0) / 100.0
    sex = np.where(np.isin(sex, (0.0, 1.0)), sex, 0.5)
    unit1 = np.nan_to_num(u1, nan=0.0) == 1
    unit2 = np.nan_to_num(u2, nan=0.0) == 1
    unknown = ~(unit1 | unit2)
    adm = np.clip(np.nan_to_num(-adm, nan=0.0), 0, 1000) / 100.0  # hours from hospital to ICU admission
    los = np.clip(np.nan_to_num(los, nan=0.0), 0, 400) / 100.0
    return np.stack([age, sex, unit1, unit2, unknown, np.log1p(adm), los], 1).astype(np.float32)


def transform_values(values: np.ndarray, log_vars: np.ndarray | None) -> np.ndarray:
    """log(1 + value) of the variables flagged in ``log_vars`` (skewed, non-negative labs); others as they are."""
    if log_vars is None or not np.any(log_vars):
        return values
    out = values.astype(np.float32, copy=True)
    flag = np.asarray(log_vars, bool)
    out[:, flag] = np.log1p(np.maximum(out[:, flag], 0))
    return out


def sepsis_features(values: np.ndarray, static: np.ndarray, mean: np.ndarray, std: np.ndarray,
                    log_vars: np.ndarray | None = None) -> np.ndarray:
    """(T, 34) hourly variables (NaN = not measured) and (T, 6) static columns -> (T, ``N_FEATURES``)."""
    filled, obs, gap = carry_forward(transform_values(values, log_vars))
    z = np.nan_to_num((filled - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)
    z = np.clip(z, -8, 8)
    counts = np.log1p(np.cumsum(obs, 0)) / np.log(200.0)
    return np.concatenate([z, obs.astype(np.float32), gap / MAX_GAP, counts, static_features(static)], 1).astype(np.float32)


class CausalAttention(nn.Module):
    """Hour t attends over hours t-ATTENTION_HOURS+1 .. t of the GRU states; weights (N, T, T), rows sum to 1."""

    def __init__(self, dim: int, window: int = ATTENTION_HOURS) -> None:
        super().__init__()
        self.q, self.k, self.window = nn.Linear(dim, dim), nn.Linear(dim, dim), window

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = h.shape[1]
        scores = self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(h.shape[-1])
        i = torch.arange(t, device=h.device)
        allowed = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - self.window)
        w = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        return w @ h, w


N_WINDOW_VARS, WINDOW = 8, 6  # the vital signs, and the hours of their recent-trend summaries


def window_summaries(z: torch.Tensor) -> torch.Tensor:
    """(N, T, >=8) standardised carried-forward values -> (N, T, 32): for the 8 vital signs, the maximum,
    minimum and mean over the last 6 hours and the change since 6 hours ago (causal: the first hour is repeated
    before the start). Computed inside the model so attributions to the values include them."""
    v = z[..., :N_WINDOW_VARS]
    w = torch.cat([v[:, :1].expand(-1, WINDOW - 1, -1), v], 1).unfold(1, WINDOW, 1)  # (N, T, 8, WINDOW)
    return torch.cat([w.amax(-1), w.amin(-1), w.mean(-1), v - w[..., 0]], -1)


class SepsisMember(nn.Module):
    """One network: input layer -> forward GRU -> causal attention -> head; (N, T, F) -> logits (N, T)."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_features + 4 * N_WINDOW_VARS, hidden), nn.GELU())
        self.encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.attention = CausalAttention(hidden)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(torch.cat([x, window_summaries(x)], -1))
        h, _ = self.encoder(e)
        ctx, w = self.attention(h)
        return self.head(torch.cat([h, ctx, e], -1)).squeeze(-1), w


class SepsisGRU(nn.Module):
    """An ensemble of ``SepsisMember`` networks trained from different seeds: (N, T, N_FEATURES) -> mean logit
    (N, T); the attention shown is the members' mean. ``risk`` applies the fitted Platt calibration."""

    def __init__(self, n_members: int = 1, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.members = nn.ModuleList(SepsisMember(N_FEATURES, hidden, dropout) for _ in range(n_members))
        self.register_buffer("mean", torch.zeros(N_VARS))
        self.register_buffer("std", torch.ones(N_VARS))
        self.register_buffer("log_vars", torch.zeros(N_VARS))  # 1: standardise log(1 + value)
        # Platt scaling fitted on validation (risk = sigmoid(a * logit + b)) and the alarm threshold on the risk
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.forward_with_attention(x) for m in self.members]
        return torch.stack([o[0] for o in outs]).mean(0), torch.stack([o[1] for o in outs]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]

    def risk(self, logits: torch.Tensor) -> torch.Tensor:
        a, b = self.calibration
        return torch.sigmoid(a * logits + b)


SEPSIS_MEMBERS, SEPSIS_HIDDEN = 3, 48


def build_sepsis_gru() -> SepsisGRU:
    return SepsisGRU(SEPSIS_MEMBERS, SEPSIS_HIDDEN)
