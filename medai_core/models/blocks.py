"""Transformer building blocks that keep their attention weights, so pages can show them.

``nn.MultiheadAttention``'s fused path does not return per-head weights cheaply; this small
pre-norm block (Xiong et al. 2020) computes them explicitly and returns them with its output.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention returning ``(output, weights)``; weights are (N, heads, T, T)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("dim must be divisible by heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None, need_weights: bool = True,
                n_queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``need_weights=False`` uses PyTorch's fused attention (same result, no (T x T) weights kept):
        scoring and attribution, where nobody looks at the weights. ``n_queries`` computes the output
        of the first ``n_queries`` tokens only (all tokens still serve as keys and values): a last
        layer whose other outputs nobody reads."""
        n, t, d = x.shape
        h = self.heads
        if n_queries is not None and not need_weights:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, :n_queries], w[:d], b[:d]).view(n, n_queries, h, d // h).transpose(1, 2)
            k, v = F.linear(x, w[d:], b[d:]).view(n, t, 2, h, d // h).permute(2, 0, 3, 1, 4)
            mask = None if pad_mask is None else ~pad_mask[:, None, None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out(y.transpose(1, 2).reshape(n, n_queries, d)), None
        q, k, v = self.qkv(x).view(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        if not need_weights:
            mask = None if pad_mask is None else ~pad_mask[:, None, None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.drop.p if self.training else 0.0)
            return self.out(y.transpose(1, 2).reshape(n, t, d)), None
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if pad_mask is not None:  # (N, T) True where padding: nothing attends to it
            scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        attn = scores.softmax(-1)
        y = (self.drop(attn) @ v).transpose(1, 2).reshape(n, t, d)
        return self.out(y), attn


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)); x + FFN(LN(x)). Returns ``(x, attention)``."""

    def __init__(self, dim: int, heads: int, ffn_mult: float = 2.0, dropout: float = 0.1,
                 attn_dropout: float = 0.1) -> None:
        super().__init__()
        hidden = int(dim * ffn_mult)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, attn_dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None, need_weights: bool = True,
                n_queries: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n_queries``: return only the first ``n_queries`` tokens (fused path, eval only)."""
        if n_queries is not None and (need_weights or self.training):
            n_queries = None
        a, w = self.attn(self.norm1(x), pad_mask, need_weights, n_queries)
        x = (x if n_queries is None else x[:, :n_queries]) + self.drop(a)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x, w


def cls_attention(weights: list[torch.Tensor]) -> torch.Tensor:
    """CLS-to-token attention from each layer: (layers, N, heads, T-1), CLS assumed at position 0."""
    return torch.stack([w[:, :, 0, 1:] for w in weights])


def binary_calibrate(logit: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Platt scaling of a binary logit: ``sigmoid(scale * logit + bias)``."""
    return torch.sigmoid(scale * logit + bias)


__all__ = ["Block", "SelfAttention", "binary_calibrate", "cls_attention"]
