"""FT-Transformer for in-hospital mortality from day-3 SUPPORT2 records (Gorishniy et al. 2021).

One token per schema feature plus a CLS token, pre-norm self-attention, a head on the CLS token.

Input encoding: one float tensor ``x`` of shape (N, F, 2) in the record's own units:
``x[:, j, 0]`` is the value of feature ``j`` (numeric value, 0/1, or the category's index) and
``x[:, j, 1]`` is 1 where the value is missing. A missing feature gets its own learned embedding
(never a zero or a "normal" value); the value slot is ignored there. One tensor keeps value and
missingness together, so feature-ablation explainers (Shapley sampling) swap both at once.

Buffers hold everything a prediction needs besides weights: per-feature log flag, centre and scale
(training medians and IQRs, after log), the Platt calibration (scale, bias) fitted on validation,
and the decision threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from medai_core.io.records import SCHEMA, RecordTable
from medai_core.models.blocks import Block, binary_calibrate, cls_attention
from medai_core.models.catalog import SUPPORT_SPEC  # noqa: F401  (re-exported)

# Right-skewed laboratory values are modelled on a log scale.
LOG_FEATURES = {"wblc", "bili", "crea", "bun", "urine", "glucose", "pafi"}


def categorical_sizes() -> list[int]:
    return [len(f.categories) if f.kind == "categorical" else 0 for f in SCHEMA]


def encode_records(frame: pd.DataFrame) -> torch.Tensor:
    """Schema-typed frame (``RecordTable.frame``) -> model input (N, F, 2), see module docstring."""
    n = len(frame)
    x = np.zeros((n, len(SCHEMA), 2), dtype=np.float32)
    for j, f in enumerate(SCHEMA):
        col = frame[f.name]
        if f.kind == "categorical":
            lookup = {c: i for i, c in enumerate(f.categories)}
            idx = col.map(lambda v: lookup.get(v, -1) if isinstance(v, str) else -1).to_numpy(dtype=np.float32)
            miss = idx < 0
            x[:, j, 0] = np.where(miss, 0, idx)
        else:
            v = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
            miss = ~np.isfinite(v)
            x[:, j, 0] = np.where(miss, 0.0, v)
        x[:, j, 1] = miss
    return torch.from_numpy(x)


def encode_table(table: RecordTable) -> torch.Tensor:
    return encode_records(table.frame)


class FeatureTokenizer(nn.Module):
    """Record (N, F, 2) -> feature tokens (N, F, d). Attributions are taken at this layer's output."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.kinds = [f.kind for f in SCHEMA]
        sizes = categorical_sizes()
        n = len(SCHEMA)
        self.weight = nn.Parameter(torch.empty(n, dim))
        self.bias = nn.Parameter(torch.empty(n, dim))
        self.missing = nn.Parameter(torch.empty(n, dim))
        self.cat_index = [j for j, s in enumerate(sizes) if s]
        self.num_index = [j for j, s in enumerate(sizes) if not s]
        self.embeddings = nn.ModuleList(nn.Embedding(sizes[j], dim) for j in self.cat_index)
        self.reset_parameters()
        self.register_buffer("log_mask", torch.tensor([f.name in LOG_FEATURES for f in SCHEMA]))
        self.register_buffer("center", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))

    def reset_parameters(self) -> None:
        for p in (self.weight, self.bias, self.missing):
            nn.init.normal_(p, std=0.1)
        for e in self.embeddings:
            nn.init.normal_(e.weight, std=0.1)

    def standardise(self, values: torch.Tensor) -> torch.Tensor:
        v = torch.where(self.log_mask, torch.log1p(values.clamp_min(0)), values)
        return ((v - self.center) / self.scale).clamp(-6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, miss = x[..., 0], x[..., 1] > 0.5
        z = self.standardise(values)
        tokens = z.unsqueeze(-1) * self.weight + self.bias  # numeric tokens (categoricals overwritten)
        cats = [emb(values[:, j].round().long().clamp(0, emb.num_embeddings - 1))
                for j, emb in zip(self.cat_index, self.embeddings)]
        if cats:
            cat_tokens = torch.stack(cats, 1)
            idx = torch.tensor(self.cat_index, device=x.device)
            tokens = tokens.index_copy(1, idx, cat_tokens + self.bias[idx])
        return torch.where(miss.unsqueeze(-1), self.missing.expand_as(tokens), tokens)


class SupportFTT(nn.Module):
    """FT-Transformer. ``forward(x) -> (N,)`` raw logits; ``predict_proba`` calibrated risk."""

    def __init__(self, dim: int = 64, depth: int = 3, heads: int = 4, dropout: float = 0.1,
                 attn_dropout: float = 0.2) -> None:
        super().__init__()
        self.tokenizer = FeatureTokenizer(dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.blocks = nn.ModuleList(Block(dim, heads, 2.0, dropout, attn_dropout) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.ReLU(), nn.Linear(dim, 1))
        self.register_buffer("platt_scale", torch.tensor(1.0))
        self.register_buffer("platt_bias", torch.tensor(0.0))
        self.register_buffer("decision_threshold", torch.tensor(0.5))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.cls, std=0.1)

    def forward_with_attention(self, x: torch.Tensor, need_weights: bool = True
                               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        tokens = self.tokenizer(x)
        h = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        weights = []
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            # the head reads the CLS token only: the last block computes that one output (~30% less work)
            h, w = blk(h, None, need_weights, 1 if i == last else None)
            weights.append(w)
        return self.head(h[:, 0]).squeeze(-1), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x, need_weights=False)[0]

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated probability of in-hospital death, (N,)."""
        return binary_calibrate(self(x), self.platt_scale, self.platt_bias)

    def cls_attention(self, x: torch.Tensor) -> torch.Tensor:
        """CLS-to-feature attention: (layers, N, heads, F)."""
        return cls_attention(self.forward_with_attention(x)[1])


class RiskHead(nn.Module):
    """Wraps a model so ``forward`` returns calibrated risk (N, 1): what attributions explain."""

    def __init__(self, model: SupportFTT) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict_proba(x).unsqueeze(-1)


def build_support_ftt() -> SupportFTT:
    return SupportFTT()
