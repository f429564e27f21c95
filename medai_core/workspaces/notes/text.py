"""Word tokenizer and vocabulary for clinical notes, keeping character spans for inline highlights.

Words are lower-cased alphabetic runs (with inner apostrophes or hyphens); numbers become ``<num>``;
punctuation is dropped. Each token remembers its (start, end) in the original text, so attributions
can be painted back onto the note exactly as the user wrote it.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

_TOKEN = re.compile(r"[A-Za-z]+(?:['\-][A-Za-z]+)*|\d+(?:[.,]\d+)*")
PAD, UNK, CLS, NUM = "<pad>", "<unk>", "<cls>", "<num>"
SPECIALS = (PAD, UNK, CLS, NUM)


@dataclass(frozen=True)
class Tokens:
    """A tokenised note: ``words[i]`` (normalised) came from ``text[spans[i][0]:spans[i][1]]``."""

    text: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.words)


def tokenize(text: str) -> Tokens:
    words, spans = [], []
    for m in _TOKEN.finditer(text):
        w = m.group(0)
        words.append(NUM if w[0].isdigit() else w.lower())
        spans.append(m.span())
    return Tokens(text, tuple(words), tuple(spans))


class Vocab:
    """Word <-> id; ids 0..3 are ``<pad> <unk> <cls> <num>``."""

    def __init__(self, words: Iterable[str]) -> None:
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, words: Iterable[str]) -> list[int]:
        unk = self.stoi[UNK]
        return [self.stoi.get(w, unk) for w in words]

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int = 20000) -> "Vocab":
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(set(tokenize(t).words))  # document frequency: one note cannot flood the vocabulary
        words = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls(words[: max_size - len(SPECIALS)])

    def to_json(self) -> str:
        return json.dumps({"itos": self.itos})

    @classmethod
    def from_json(cls, text: str) -> "Vocab":
        itos = json.loads(text)["itos"]
        if tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise ValueError("not a MedAI vocabulary")
        return cls(itos[len(SPECIALS):])

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        return cls.from_json(Path(path).read_text())


def windows(n_tokens: int, length: int) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping windows covering ``n_tokens`` (the last may be shorter; at least one)."""
    if n_tokens <= 0:
        return [(0, 0)]
    return [(s, min(s + length, n_tokens)) for s in range(0, n_tokens, length)]
