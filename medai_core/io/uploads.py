"""Reading an uploaded text file (CSV, notes) safely: one place for the size, empty and binary checks."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import pandas as pd

from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat


def read_text(data: bytes | Path, max_bytes: int) -> str:
    """Bytes (or a path to read) -> text, decoded as UTF-8 (with or without BOM), else Windows-1252.

    Raises:
        InputError: unreadable path; ``TooLarge`` over ``max_bytes``; ``EmptyInput`` for nothing but
            whitespace; ``UnsupportedFormat`` for binary data (a NUL byte near the start).
    """
    if isinstance(data, Path):
        try:
            data = data.read_bytes()
        except OSError as exc:
            raise InputError(f"The file cannot be read ({exc.strerror}).") from None
    if len(data) > max_bytes:
        raise TooLarge(f"The file is {len(data) / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not data.strip():
        raise EmptyInput("The file is empty.")
    if b"\x00" in data[:8192]:
        raise UnsupportedFormat("This is not a text file (it contains binary data).")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_csv_strings(text: str, nrows: int | None = None, **kw: object) -> pd.DataFrame:
    """CSV text -> DataFrame of strings, every column from the header (never an implicit index).

    pandas silently turns the first column into the index when rows have one more field than the
    header (e.g. a trailing comma); here that, and any other malformed row, is an ``UnsupportedFormat``.
    Blank cells stay ``""`` (pandas drops the extra field without a warning when ``na_values`` is
    given, so callers that want NaN convert afterwards).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False, nrows=nrows, **kw)
    except pd.errors.ParserWarning:
        raise UnsupportedFormat("Some rows have more values than the header has columns (a trailing comma?); "
                                "each row needs one value per column.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        raise UnsupportedFormat(f"The file could not be read as a CSV table ({str(exc).splitlines()[0][:120]}).") from None
