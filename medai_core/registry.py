"""One small registry used for models and explainers (MONAI ``look_up_option`` style)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from medai_core.errors import UnknownName

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """A registered object and the metadata it was registered with."""

    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to objects; ``get`` answers unknown names with "did you mean ...?"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with metadata ``meta``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Entry(name, obj, dict(meta))
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a user model whose folder went away); absent names are ignored."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; raises ``UnknownName`` with suggestions."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownName(f"Unknown {self.kind} {name!r}.{hint} Known: {known}.") from None

    def get(self, name: str) -> T:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def names(self, **where: Any) -> list[str]:
        """Registered names, optionally only those whose metadata matches ``where``.

        A metadata value that is a set/tuple/list matches if it contains the wanted value.
        """
        out = []
        for name, e in self._entries.items():
            ok = True
            for k, want in where.items():
                have = e.meta.get(k)
                if isinstance(have, (set, frozenset, tuple, list)):
                    ok &= want in have
                else:
                    ok &= have == want
            if ok:
                out.append(name)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
