"""Clinical notes in: pasted text, .txt files, or a .csv with a ``text`` column (and optional ``id``).

Every failure is an ``InputError`` with a clear message; nothing is written anywhere.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


from medai_core.errors import EmptyInput, InputError, TooLarge
from medai_core.io.uploads import read_csv_strings, read_text

MAX_NOTE_CHARS = 200_000  # ~30,000 words; longer texts are not single notes
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_NOTES = 10_000
_WORD = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Note:
    """One note: ``key`` is ``"id"`` (from a CSV) or ``"file"``; ``ref`` its value."""

    text: str
    key: str = "file"
    ref: str = ""


def check_text(text: str, what: str = "The note") -> str:
    """Validate one note's text; returns it stripped."""
    if text is None or not str(text).strip():
        raise EmptyInput(f"{what} is empty.")
    text = str(text).strip()
    if len(text) > MAX_NOTE_CHARS:
        raise TooLarge(f"{what} has {len(text):,} characters; the limit is {MAX_NOTE_CHARS:,} (about 30,000 words).")
    if not _WORD.search(text):
        raise InputError(f"{what} contains no words.")
    return text


def load_notes(data: bytes | Path, name: str = "") -> list[Note]:
    """Notes from a file: a ``.csv`` (by name) with a ``text`` column, else the whole file is one note.

    Args:
        data: file bytes or a path.
        name: the file name (for the ``file`` field and to recognise ``.csv``).

    Raises:
        InputError: empty, binary, too large, or a CSV without a ``text`` column.
    """
    if isinstance(data, (str, Path)):
        name = name or str(data)
        data = Path(data)
    text = read_text(data, MAX_FILE_BYTES)
    if not name.lower().endswith(".csv"):
        return [Note(check_text(text), "file", name)]
    df = read_csv_strings(text, MAX_NOTES + 1)
    cols = {c.strip().lower(): c for c in df.columns}
    if "text" not in cols:
        raise InputError(f"The CSV needs a 'text' column (found: {', '.join(map(str, df.columns[:10]))}).")
    if len(df) == 0:
        raise EmptyInput("The CSV has a header but no notes.")
    if len(df) > MAX_NOTES:
        raise TooLarge(f"The CSV has {len(df):,} notes; the limit is {MAX_NOTES:,}.")
    ids = df[cols["id"]].astype(str).tolist() if "id" in cols else None
    if ids is not None:
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)  # one pass: 10,000 ids, not 10,000^2
        if dup:
            raise InputError(f"Duplicate ids in the CSV: {', '.join(dup[:5])}.")
    notes = []
    for i, t in enumerate(df[cols["text"]].tolist()):
        label = ids[i] if ids is not None else f"{name}:{i + 2}"
        notes.append(Note(check_text(t, f"Row {i + 2} ({label})"), "id" if ids is not None else "file", label))
    return notes
