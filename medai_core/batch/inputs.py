"""The inputs of a batch job: files, folders (every file below, in name order) and CSV manifests.

A manifest is a ``.csv`` whose first column is headed ``path``: one input per row, relative paths taken from
the manifest's own folder. Anything else is an input itself (so a records CSV is scored, not expanded). Each
input is listed once, by its path as given; a path that does not exist stays in the list and gets an error row.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator

from medai_core.errors import InputError


def is_manifest(path: Path) -> bool:
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return bool(header) and header[0].strip().lower() == "path"


def _manifest(path: Path) -> Iterator[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader)
            for row in reader:
                if row and row[0].strip():
                    p = Path(row[0].strip())
                    yield str(p if p.is_absolute() else path.parent / p)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"Could not read the manifest {path.name}: {exc}") from exc


def expand_inputs(items: Iterable[str]) -> list[str]:
    """Every input path, in the order given (folders in name order), each once."""
    seen: dict[str, None] = {}
    for raw in items:
        p = Path(raw)
        if p.is_dir():
            found = (str(q) for q in sorted(p.rglob("*")) if q.is_file() and not q.name.startswith("."))
        elif is_manifest(p):
            found = _manifest(p)
        else:
            found = iter([str(p)])
        for q in found:
            seen.setdefault(q, None)
    return list(seen)
