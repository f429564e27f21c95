"""Per-session caches of what a page run builds: figures, encoded overlays, rendered views (issue 18).

A widget change reruns the page script; without these every figure was built again (plotly validation and PNG
encoding: most of a rerun's time). ``figure(fn, *args)`` returns this session's copy of ``fn(*args)`` when it was
built before with the same arguments, else builds it.

- **Keys hold every argument.** The key is the builder's name and a digest of all its arguments (numbers,
  strings, arrays by content, dataclasses field by field), so nothing that changes the output can be left out
  of it. An argument of a type it cannot digest raises ``TypeError`` (a new parameter type must say how it is
  keyed) instead of being ignored. A large array the page already has a key for (the rendered scan: upload
  digest, frame, window) is passed as ``Keyed(array, key)`` and not hashed again.
- **Sessions never share.** The store lives in this session's ``st.session_state``: no other session can be
  served a figure built from this session's upload, whatever its key.
- **Bounded.** A few dozen entries per session, least recently used first out (a figure is at most about 1.5 MB
  of PNG text), and arrays (``value``) a handful.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from typing import Any, Callable, TypeVar

import numpy as np
import streamlit as st

T = TypeVar("T")
K_FIGURES, K_VALUES, K_PICTURES = "ui.memo.figures", "ui.memo.values", "ui.memo.pictures"
KEEP_FIGURES, KEEP_VALUES, KEEP_PICTURES = 24, 4, 16
__all__ = ["Keyed", "figure", "fingerprint", "picture", "value"]


@dataclasses.dataclass(frozen=True)
class Keyed:
    """An argument that is keyed by ``key`` (which must determine it) instead of by its content."""

    value: Any
    key: tuple


def _feed(h: Any, x: Any) -> None:  # noqa: ANN401 - any argument
    if isinstance(x, Keyed):
        h.update(b"K")
        _feed(h, x.key)
    elif x is None or isinstance(x, (bool, int, float, str, complex)):
        h.update(f"{type(x).__name__}:{x!r};".encode())
    elif isinstance(x, bytes):
        h.update(b"B%d;" % len(x))
        h.update(x)
    elif isinstance(x, np.generic):
        _feed(h, x.item())
    elif isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        h.update(f"A{a.dtype.str}{a.shape};".encode())
        h.update(a.view(np.uint8).data if a.size else b"")
    elif isinstance(x, (tuple, list)):
        h.update(f"{type(x).__name__}{len(x)}(".encode())
        for v in x:
            _feed(h, v)
        h.update(b")")
    elif isinstance(x, dict):
        h.update(f"D{len(x)}(".encode())
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
        h.update(b")")
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        h.update(f"dc:{type(x).__module__}.{type(x).__qualname__}(".encode())
        for f in dataclasses.fields(x):
            h.update(f.name.encode())
            _feed(h, getattr(x, f.name))
        h.update(b")")
    elif type(x).__module__.startswith("pandas"):
        import pandas as pd

        h.update(f"pd:{type(x).__name__};".encode())
        if isinstance(x, (pd.DataFrame, pd.Series)):
            _feed(h, [str(c) for c in (x.columns if isinstance(x, pd.DataFrame) else [x.name])])
            h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
        else:  # Timestamp, Timedelta and the like
            _feed(h, str(x))
    else:
        raise TypeError(f"cannot key a figure on a {type(x).__qualname__}: pass it as ui.Keyed(value, key)")


def fingerprint(*parts: Any) -> str:  # noqa: ANN401
    """A digest of ``parts`` by content (see the module's docstring for what is accepted)."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, parts)
    return h.hexdigest()


def _unwrap(x: Any) -> Any:  # noqa: ANN401
    return x.value if isinstance(x, Keyed) else x


def _memo(store_key: str, keep: int, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    key = (fn.__module__, fn.__qualname__, fingerprint(args, kwargs))
    store: OrderedDict = st.session_state.setdefault(store_key, OrderedDict())
    if key in store:
        store.move_to_end(key)
        return store[key]
    out = fn(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()})
    store[key] = out
    while len(store) > keep:
        store.popitem(last=False)
    return out


def figure(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # noqa: ANN401
    """``fn(*args, **kwargs)`` (a figure builder), from this session's cache when built before with the same
    arguments."""
    return _memo(K_FIGURES, KEEP_FIGURES, fn, args, kwargs)


def value(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # noqa: ANN401
    """The same for a large value (a rendered view of a scan): fewer kept."""
    return _memo(K_VALUES, KEEP_VALUES, fn, args, kwargs)


def picture(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # noqa: ANN401
    """The same for an encoded picture (a scan or a map's layer as PNG text, ``plots.image.Picture``): a figure
    rebuilt for another opacity or title reuses it instead of encoding again."""
    return _memo(K_PICTURES, KEEP_PICTURES, fn, args, kwargs)
