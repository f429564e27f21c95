"""A small Transformer that reads a clinical note and names its specialty (MTSamples), from scratch.

Input: token ids (N, T) with ``<cls>`` at position 0 and ``<pad>`` = 0 after the text; T <= 1 +
``MAX_TOKENS``. Longer notes are read in consecutive windows and their logits averaged
(``medai_core.workspaces.notes``). Output: (N, classes) logits; ``temperature`` (a buffer, fitted on
validation) calibrates them.

The classifier reads the CLS token plus a mean of the token states (the mean keeps small-data
training stable; both paths pass through the same attention layers, whose CLS-to-token weights
the page shows). The word vocabulary ships beside the weights (``notes_tfm.vocab.json``) and its
sha256 is checked against the card like the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from medai_core.models.blocks import Block, cls_attention
from medai_core.models.catalog import MAX_TOKENS, NOTES_LABELS, NOTES_SPEC  # noqa: F401  (re-exported)

VOCAB_SIZE = 16000


class NotesTransformer(nn.Module):
    def __init__(self, n_classes: int = len(NOTES_LABELS), vocab_size: int = VOCAB_SIZE, dim: int = 128,
                 depth: int = 2, heads: int = 4, max_len: int = MAX_TOKENS + 1, dropout: float = 0.1,
                 attn_dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, 2.0, dropout, attn_dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(2 * dim, n_classes)
        self.register_buffer("temperature", torch.tensor(1.0))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.pos, std=0.02)

    def forward_with_attention(self, ids: torch.Tensor, pad: torch.Tensor | None = None, need_weights: bool = True
                               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``pad`` (N, T) marks padding; by default ``ids == 0``. Attribution passes the real note's mask
        with its baseline, so only the word embeddings change along the integration path."""
        if pad is None:
            pad = ids == 0
        h = self.drop(self.embed(ids) + self.pos[:, : ids.shape[1]])
        weights = []
        for blk in self.blocks:
            h, w = blk(h, pad, need_weights)
            weights.append(w)
        h = self.norm(h)
        keep = (~pad).unsqueeze(-1).float()
        keep[:, 0] = 0  # the mean is over words, not the CLS token
        mean = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.head(torch.cat([h[:, 0], mean], -1)), weights

    def forward(self, ids: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_attention(ids, pad, need_weights=False)[0]

    def cls_attention(self, ids: torch.Tensor) -> torch.Tensor:
        """CLS-to-token attention: (layers, N, heads, T-1)."""
        return cls_attention(self.forward_with_attention(ids)[1])


def build_notes_tfm() -> NotesTransformer:
    return NotesTransformer()
