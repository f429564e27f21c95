"""What an audit record may hold: short scalars only, so no input content can reach the trail.

``params`` and ``summary`` are small JSON objects (method, target, threshold; label, risk, alarm). Anything
else a caller passes by mistake (a nested object, a long string, bytes, an array) is dropped, not stored.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

ACTIONS = ("predict", "explain", "sanity_check", "export", "report", "batch", "train")
MAX_KEYS = 24
MAX_KEY_CHARS = 40
MAX_TEXT_CHARS = 64  # a label or a method name; not room for a sentence of a note
MAX_LIST = 16
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


def _scalar(v: Any) -> tuple[bool, Any]:
    if v is None or isinstance(v, bool):
        return True, v
    if isinstance(v, int):
        return True, v
    if isinstance(v, float):
        return (True, v) if math.isfinite(v) else (True, None)
    if isinstance(v, str):
        return True, v[:MAX_TEXT_CHARS]
    item = getattr(v, "item", None)  # a numpy scalar
    if callable(item) and getattr(v, "shape", None) == ():
        return _scalar(item())
    return False, None


def clean_fields(fields: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the entries of ``fields`` that are short scalars (or short lists of them) under plain keys.

    Args:
        fields: a caller's params or summary; None is an empty object.
    Returns:
        A new dict: at most ``MAX_KEYS`` entries, keys matching ``[A-Za-z_][A-Za-z0-9_.-]*`` (at most
        ``MAX_KEY_CHARS``), strings cut to ``MAX_TEXT_CHARS``, lists to ``MAX_LIST`` scalars, non-finite
        floats as None. Everything else (nested dicts, bytes, arrays, objects) is left out.
    """
    out: dict[str, Any] = {}
    for key, value in (fields or {}).items():
        if len(out) >= MAX_KEYS:
            break
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not _KEY.match(key):
            continue
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_LIST:
                continue
            items = [_scalar(v) for v in value]
            if all(ok for ok, _ in items):
                out[key] = [v for _, v in items]
            continue
        ok, v = _scalar(value)
        if ok:
            out[key] = v
    return out


def to_json(fields: dict[str, Any]) -> str:
    """Canonical JSON text of cleaned fields (sorted keys, no spaces)."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(ACTIONS)}")
    return action


def check_digest(value: str | None, what: str) -> str | None:
    """A sha256 in lowercase hex, or None; ``weights_sha256`` may also be ``"unknown"`` (a card without it)."""
    if value is None or (what == "weights_sha256" and value == "unknown"):
        return value
    value = value.lower() if isinstance(value, str) and what == "weights_sha256" else value
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ValueError(f"{what} must be a sha256 in lowercase hex (64 characters)")
    return value


def check_name(value: str | None, what: str, required: bool = False) -> str | None:
    """A workspace or model name: letters, digits and ``_.:-``, at most 100 characters."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{what} must be a short name (letters, digits, '_.:-'), got a {type(value).__name__}")
    return value


def check_user(value: str) -> str:
    """An e-mail, account name or anonymous session id: one line, at most 200 characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("user must be a non-empty string (an anonymous session id when sign-in is off)")
    return " ".join(value.split())[:200]
