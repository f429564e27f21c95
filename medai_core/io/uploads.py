"""Reading an uploaded text file (CSV, notes) safely: one place for the size, empty and binary checks."""
from __future__ import annotations

from pathlib import Path

from ..errors import EmptyInput, InputError, TooLarge, UnsupportedFormat


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
