"""Clinical notes: classify, explain (token attributions) and show attention, for any registered text model.

Long notes are read in consecutive windows of the spec's ``max_tokens`` words; the note's logits are
the mean of its windows' logits (every word counts once; nothing is cut off). Pages state this.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from medai_core.errors import InputError, ModelError
from medai_core.explain.base import Explanation, ProgressFn, explainer_for, thread_copy
from medai_core.io.notes import check_text
from medai_core.models.spec import ModelSpec, assets_dir, read_card, sha256_file
from medai_core.workspaces.notes.text import CLS, Tokens, Vocab, tokenize, windows


@lru_cache(maxsize=8)
def _load_vocab(path: str, sha: str | None) -> Vocab:
    p = __import__("pathlib").Path(path)
    if not p.exists():
        raise ModelError(f"Vocabulary not found at {p}.")
    if sha and sha256_file(p) != sha:
        raise ModelError(f"Vocabulary {p} does not match the model card's sha256.")
    return Vocab.load(p)


def load_vocab(spec: ModelSpec) -> Vocab:
    """The vocabulary shipped beside a text model's weights (sha256 checked against the card)."""
    return _load_vocab(str(assets_dir() / spec.extra["vocab"]), read_card(spec.name).get("vocab_sha256"))


@dataclass(frozen=True)
class EncodedNote:
    """A note as the model reads it: ``ids`` (W, T) windows with CLS at 0 and padding 0."""

    tokens: Tokens
    ids: torch.Tensor
    bounds: tuple[tuple[int, int], ...]  # token range of each window
    unknown: int  # words not in the vocabulary

    @property
    def n_windows(self) -> int:
        return len(self.bounds)


def encode_note(text: str, vocab: Vocab, spec: ModelSpec) -> EncodedNote:
    text = check_text(text)
    toks = tokenize(text)
    if len(toks) == 0:
        raise InputError("The note contains no words the model can read.")
    word_ids = vocab.encode(toks.words)
    bounds = windows(len(word_ids), int(spec.extra["max_tokens"]))
    width = max(b - a for a, b in bounds) + 1
    ids = torch.zeros(len(bounds), width, dtype=torch.long)
    for w, (a, b) in enumerate(bounds):
        ids[w, 0] = vocab.stoi[CLS]
        ids[w, 1:b - a + 1] = torch.tensor(word_ids[a:b], dtype=torch.long)
    unknown = sum(1 for i in word_ids if i == vocab.stoi["<unk>"])
    return EncodedNote(toks, ids, tuple(bounds), unknown)


@dataclass(frozen=True)
class NotePrediction:
    label: str
    probabilities: dict[str, float]
    n_tokens: int
    n_windows: int
    unknown_share: float

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_json(self, key: str, ref: str, model: str) -> dict[str, object]:
        return {key: ref, "model": model, "label": self.label,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


def classify(model: nn.Module, spec: ModelSpec, vocab: Vocab, text: str | EncodedNote) -> NotePrediction:
    """Calibrated specialty probabilities for one note (windows averaged)."""
    enc = text if isinstance(text, EncodedNote) else encode_note(text, vocab, spec)
    with torch.inference_mode():
        logits = model(enc.ids).double().mean(0)
        probs = torch.softmax(logits / float(model.temperature), -1).numpy()
    p = {lab: float(v) for lab, v in zip(spec.labels, probs)}
    return NotePrediction(spec.labels[int(probs.argmax())], p, len(enc.tokens), enc.n_windows,
                          enc.unknown / max(len(enc.tokens), 1))


@dataclass(frozen=True)
class TokenAttribution:
    """One value per word of the note (windows stitched back), plus the explanation's diagnostics."""

    tokens: Tokens
    values: np.ndarray  # (n_tokens,)
    explanation: Explanation


def explain_note(model: nn.Module, spec: ModelSpec, vocab: Vocab, text: str | EncodedNote, target: str,
                 method: str = "integrated_gradients", progress: ProgressFn | None = None, *,
                 copy_model: bool = True, **params: object) -> TokenAttribution:
    """Per-word attributions for class ``target`` (on this thread's private model copy; on ``model``
    itself with ``copy_model=False``, for callers that hold a private copy already)."""
    if target not in spec.labels:
        raise InputError(f"Unknown specialty {target!r}; choose one of {', '.join(spec.labels)}.")
    enc = text if isinstance(text, EncodedNote) else encode_note(text, vocab, spec)
    fn, _ = explainer_for(method, spec.modality)
    exp = fn(thread_copy(model) if copy_model else model, enc.ids, spec.labels.index(target), progress=progress, **params)
    values = _stitch(exp.attributions, enc.bounds)
    return TokenAttribution(enc.tokens, values, Explanation(exp.method, target, values, exp.diagnostics,
                                                             exp.params, exp.seconds))


def _stitch(per_window: np.ndarray, bounds: tuple[tuple[int, int], ...]) -> np.ndarray:
    return np.concatenate([per_window[w, : b - a] for w, (a, b) in enumerate(bounds)])


def note_attention(model: nn.Module, enc: EncodedNote) -> np.ndarray:
    """CLS-to-word attention (layers, heads, n_tokens), windows stitched (each window's weights sum to 1
    over its words and CLS)."""
    with torch.inference_mode():
        a = model.cls_attention(enc.ids)  # (L, W, H, T-1)
    a = a.permute(1, 0, 2, 3).double().numpy()  # (W, L, H, T-1)
    return np.concatenate([a[w, :, :, : b - a_] for w, (a_, b) in enumerate(enc.bounds)], axis=-1)


def highlight_html(tokens: Tokens, values: np.ndarray, signed: bool = True, max_chars: int | None = None) -> str:
    """The note as HTML with each word's background coloured by its value: red raises the class,
    green lowers it (signed), or one hue for unsigned weights (attention). Text is escaped."""
    text = tokens.text
    values = raw_values = np.asarray(values, dtype=float)
    if not signed and len(values):
        # unsigned weights (attention) are shaded from their minimum to their maximum, so a nearly
        # even distribution still shows its ranking; callers state how flat it is
        values = values - values.min()
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    scale = scale or 1.0
    out, pos = [], 0
    limit = len(text) if max_chars is None else min(len(text), max_chars)
    for (a, b), v, raw in zip(tokens.spans, values, raw_values):
        if a >= limit:
            break
        out.append(html.escape(text[pos:a]))
        s = float(v) / scale
        if signed:
            rgb = "192,57,43" if s > 0 else "39,174,96"
        else:
            rgb = "41,128,185"
        alpha = min(abs(s), 1.0) * 0.85
        word = html.escape(text[a:b])
        out.append(f'<span title="{raw:+.4f}" style="background: rgba({rgb},{alpha:.2f}); border-radius: 3px">{word}</span>'
                   if alpha >= 0.02 else word)
        pos = b
    out.append(html.escape(text[pos:limit]))
    if limit < len(text):
        out.append(" …")
    body = "".join(out).replace("\n", "<br>")
    return f'<div style="line-height: 1.9; font-size: 0.95rem; max-height: 28rem; overflow-y: auto">{body}</div>'


def attention_peakedness(weights: np.ndarray) -> float:
    """How far one head's attention is from even: the largest weight divided by 1/n (1 = perfectly even)."""
    w = np.asarray(weights, dtype=float)
    return float(w.max() * len(w)) if len(w) else 0.0


def top_words(tokens: Tokens, values: np.ndarray, k: int = 15) -> list[tuple[str, float]]:
    """Words with the largest values, each word summed over its occurrences (for a bar chart)."""
    agg: dict[str, float] = {}
    for (a, b), v in zip(tokens.spans, values):
        w = tokens.text[a:b].lower()
        agg[w] = agg.get(w, 0.0) + float(v)
    return sorted(agg.items(), key=lambda kv: -abs(kv[1]))[:k]
