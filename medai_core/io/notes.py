"""Clinical notes in: pasted text, .txt files, or a .csv with a ``text`` column (and optional ``id``).

A whole file is refused (an ``InputError`` with a clear message) only for what is wrong with the whole
file: empty, binary, over the limits, no ``text`` column, duplicate ids, or no row with a note to score.
One empty or unreadable row of a CSV is set aside as a ``DataChange`` (its row number, never its text)
and the other rows are returned. Nothing is written anywhere.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from medai_core.errors import EmptyInput, InputError, TooLarge
from medai_core.io.changes import NOT_SCORED, DataChange
from medai_core.io.uploads import read_csv_strings, read_text

MAX_NOTE_CHARS = 200_000  # ~30,000 words; longer texts are not single notes
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_NOTES = 10_000
MAX_GARBLED_SHARE = 0.1  # more control or replacement characters than this: binary data, not a note
_WORD = re.compile(r"[A-Za-z]")
# control characters that are not white space (unicodedata category Cc: only U+0000-001F and U+007F-009F), and
# the replacement character: one regex pass instead of a Python loop over every character (2.4 s for MTSamples)
_GARBLED = re.compile("[" + "".join(re.escape(chr(c)) for c in (*range(0x20), *range(0x7F, 0xA0))
                                    if not chr(c).isspace()) + "\ufffd]")
EMPTY, UNREADABLE, TOO_LONG = "(empty)", "(unreadable)", "(too long)"  # what a set-aside row's value shows


@dataclass(frozen=True)
class Note:
    """One note: ``key`` is ``"id"`` (from a CSV) or ``"file"``; ``ref`` its value; ``row`` its 1-based
    data row in a CSV (None for a whole file or pasted text)."""

    text: str
    key: str = "file"
    ref: str = ""
    row: int | None = None


@dataclass(frozen=True)
class SkippedNote:
    """A CSV row that was not scored: its reference (the id, or ``file:line``) and why; never its text."""

    key: str
    ref: str
    change: DataChange

    @property
    def row(self) -> int | None:
        return self.change.row

    def message(self) -> str:
        """For an error line: ``Row 3 (n3) was not scored: the note is empty.``"""
        where = f"Row {self.change.row}" + (f" ({self.ref})" if self.ref else "")
        return f"{where} was not scored: {self.change.reason}."


@dataclass(frozen=True)
class NoteBatch(Sequence[Note]):
    """The notes of one file (a sequence of ``Note``, so it is used like a list) and the rows set aside.

    Attributes:
        notes: the notes to classify, in file order.
        skipped: the CSV rows that were not scored (empty or unreadable), in file order.
    """

    notes: tuple[Note, ...]
    skipped: tuple[SkippedNote, ...] = ()

    @property
    def changes(self) -> tuple[DataChange, ...]:
        """One ``DataChange`` (action ``NOT_SCORED``) per row set aside, for the panel, CLI and report."""
        return tuple(s.change for s in self.skipped)

    def in_file_order(self) -> list[Note | SkippedNote]:
        """Notes and set-aside rows together, in the order of the file (for one output line each)."""
        return sorted((*self.notes, *self.skipped), key=lambda x: x.row or 0)

    @overload
    def __getitem__(self, i: int) -> Note: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Note, ...]: ...
    def __getitem__(self, i: int | slice) -> Note | tuple[Note, ...]:
        return self.notes[i]

    def __len__(self) -> int:
        return len(self.notes)


def check_text(text: str, what: str = "The note") -> str:
    """Validate one note's text; returns it stripped."""
    problem = _problem(text)
    if problem is None:
        return str(text).strip()
    value, reason = problem
    if value == EMPTY:
        raise EmptyInput(f"{what} is empty.")
    if value == TOO_LONG:
        raise TooLarge(f"{what} has {len(str(text).strip()):,} characters; the limit is {MAX_NOTE_CHARS:,} "
                       "(about 30,000 words).")
    raise InputError(f"{what} {reason.removeprefix('the note ')}.")


def _problem(text: object) -> tuple[str, str] | None:
    """Why a text cannot be scored, as (value shown, reason), or None. The reasons never quote the text."""
    if not isinstance(text, str) or not text.strip():  # a missing cell (None, NaN) is empty, not the word "nan"
        return EMPTY, "the note is empty"
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS:
        return TOO_LONG, (f"the note is longer than {MAX_NOTE_CHARS:,} characters (about 30,000 words), the limit for "
                          "one note")
    garbled = len(_GARBLED.findall(text))
    if garbled > MAX_GARBLED_SHARE * len(text):
        return UNREADABLE, "the note contains binary data, not text"
    if not _WORD.search(text):
        return UNREADABLE, "the note contains no words"
    return None


def load_notes(data: bytes | Path, name: str = "") -> NoteBatch:
    """Notes from a file: a ``.csv`` (by name) with a ``text`` column, else the whole file is one note.

    An empty or unreadable row of a CSV (blank or whitespace-only text, a row with too few values, no
    words, binary data, too long) is set aside: ``NoteBatch.skipped`` / ``.changes`` name its row, never
    its text, and the other rows are returned.

    Args:
        data: file bytes or a path.
        name: the file name (for the ``file`` field and to recognise ``.csv``).

    Returns:
        A ``NoteBatch``: a sequence of ``Note`` (as a list would be used) with the rows set aside.

    Raises:
        InputError: empty, binary, too large, a CSV without a ``text`` column, duplicate ids, a table
            that cannot be parsed, or a CSV with no row that holds a note.
    """
    if isinstance(data, (str, Path)):
        name = name or str(data)
        data = Path(data)
    text = read_text(data, MAX_FILE_BYTES)
    if not name.lower().endswith(".csv"):
        return NoteBatch((Note(check_text(text), "file", name),))
    # blank lines are empty notes (a one-column export writes an empty note as one); pandas would drop them
    # silently and shift the row numbers. Blank lines around the table are not rows.
    df = read_csv_strings(text.lstrip("\r\n").rstrip(), MAX_NOTES + 1, skip_blank_lines=False)
    cols = {c.strip().lower(): c for c in df.columns}
    if "text" not in cols:
        raise InputError(f"The CSV needs a 'text' column (found: {', '.join(map(str, df.columns[:10]))}).")
    if len(df) == 0:
        raise EmptyInput("The CSV has a header but no notes.")
    if len(df) > MAX_NOTES:
        raise TooLarge(f"The CSV has {len(df):,} notes; the limit is {MAX_NOTES:,}.")
    ids = df[cols["id"]].astype(str).tolist() if "id" in cols else None
    key = "id" if ids is not None else "file"
    notes: list[Note] = []
    skipped: list[SkippedNote] = []
    for i, t in enumerate(df[cols["text"]].tolist()):
        row = i + 1  # 1-based data row; the ref without ids keeps the file's line number (header = line 1)
        ref = ids[i] if ids is not None else f"{name}:{i + 2}"
        problem = _problem(t)
        if problem is None:
            notes.append(Note(t.strip(), key, ref, row))
        else:
            skipped.append(SkippedNote(key, ref, DataChange(row, "text", "", problem[0], NOT_SCORED, problem[1])))
    if ids is not None:
        dup = sorted(r for r, n in Counter(n.ref for n in notes).items() if n > 1)  # one pass, not 10,000^2
        if dup:
            raise InputError(f"Duplicate ids in the CSV: {', '.join(dup[:5])}.")
    if not notes:
        rows = "; ".join(f"row {s.row}: {s.change.reason}" for s in skipped[:5])
        raise EmptyInput(f"None of the CSV's {len(skipped):,} rows holds a note that can be scored "
                         f"({rows}{'; ...' if len(skipped) > 5 else ''}).")
    return NoteBatch(tuple(notes), tuple(skipped))
