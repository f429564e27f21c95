"""What MedAI changed in the user's data before scoring it: one ``DataChange`` per cell, reading or row
that was set aside. Loaders return them with the data; pages show them in a "what we changed in your
data" panel, the CLIs print them, and case reports list them. A change is never silent.

A file is refused only for what is wrong with the whole file (empty, binary, no required columns,
over the limits, too little left to score); one bad cell, reading or row is a ``DataChange``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

MAX_VALUE_CHARS = 40

# actions
SET_MISSING = "set to missing"
DROPPED = "dropped"
NOT_SCORED = "not scored"


@dataclass(frozen=True)
class DataChange:
    """One change made to the user's data.

    Attributes:
        row: 1-based data row of the uploaded table (records, notes CSV), or None (series readings).
        field: the column, signal or "text" it concerns.
        at: when, for a reading of a series (elapsed ``h:mm`` or the upload's time); "" otherwise.
        value: the value as found, shortened to ``MAX_VALUE_CHARS`` characters.
        action: what was done: ``SET_MISSING``, ``DROPPED`` or ``NOT_SCORED``.
        reason: why, in plain words with the accepted range ("outside the plausible range 20-1,200 mg/dL").
    """

    row: int | None
    field: str
    at: str
    value: str
    action: str
    reason: str

    def to_json(self) -> dict[str, object]:
        """As the CLIs print it (``row`` and ``at`` only where they apply)."""
        out: dict[str, object] = {"field": self.field, "value": self.value, "action": self.action, "reason": self.reason}
        if self.row is not None:
            out = {"row": self.row, **out}
        if self.at:
            out["at"] = self.at
        return out

    def text(self) -> str:
        """One line: ``row 12, glucose = 0: set to missing (outside the plausible range 20-1,200 mg/dL)``."""
        where = ", ".join(p for p in (f"row {self.row}" if self.row is not None else "", self.field,
                                       f"at {self.at}" if self.at else "") if p)
        return f"{where} = {self.value}: {self.action} ({self.reason})"


def shown_value(value: object) -> str:
    """The value as the user wrote it, shortened for display (never more than ``MAX_VALUE_CHARS``)."""
    text = str(value).strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def range_text(low: float, high: float, unit: str = "") -> str:
    """An accepted range as reasons and forms show it: ``5-2,000 mg/dL``, ``3-15``."""
    return f"{low:,g}-{high:,g} {unit}".rstrip()


def summarise(changes: Sequence[DataChange]) -> list[str]:
    """One line per (field, action, reason), most frequent first: ``glucose: 3 values set to missing
    (outside the plausible range ...)``, ``HR: 2 readings dropped (...)``, ``1 row not scored: ...``."""
    counts = Counter((c.field, c.action, c.reason) for c in changes)
    out = []
    for (f, a, r), n in counts.most_common():
        if a == NOT_SCORED:
            out.append(f"{n} row{'s' if n != 1 else ''} {a}: {r}")
        else:
            noun = "reading" if a == DROPPED else "value"  # series readings are dropped, table cells set to missing
            out.append(f"{f}: {n} {noun}{'s' if n != 1 else ''} {a} ({r})")
    return out


def rows_with_changes(changes: Iterable[DataChange]) -> dict[int, list[DataChange]]:
    """The changes of each 1-based row (for a flag beside that row's result)."""
    out: dict[int, list[DataChange]] = {}
    for c in changes:
        if c.row is not None:
            out.setdefault(c.row, []).append(c)
    return out


def changes_table(changes: Sequence[DataChange]) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Header and rows for a table view (pages, reports): row, field, time, value, action, reason."""
    header = ("row", "field", "time", "value", "action", "reason")
    rows = tuple(("" if c.row is None else str(c.row), c.field, c.at, c.value, c.action, c.reason) for c in changes)
    return header, rows
