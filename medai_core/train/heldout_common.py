"""Helpers every held-out builder shares: rounding, the card checks, the file's common fields."""
from __future__ import annotations

from typing import Any

import numpy as np

from medai_core.errors import ModelError
from medai_core.models.spec import assets_dir, get_spec, sha256_file

TOLERANCE = 0.0015  # "to 3 decimals"


def _r(x: Any) -> Any:
    """Round floats (and arrays / nested lists of them) to 4 decimals for a small, stable file."""
    if isinstance(x, np.ndarray):
        return _r(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_r(v) for v in x]
    if isinstance(x, dict):
        return {k: _r(v) for k, v in x.items()}
    if isinstance(x, (float, np.floating)):
        v = round(float(x), 4)
        return 0.0 if v == 0 else v  # no "-0.0"
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def _check(name: str, what: str, got: float, card: float, rows: dict[str, Any]) -> None:
    rows[what] = {"heldout": round(float(got), 4), "card": round(float(card), 4)}
    if abs(got - card) > TOLERANCE:
        raise ModelError(f"{name}: {what} on the reproduced test split is {got:.4f}, the card says {card:.4f}.")


def _same_ids(name: str, got: list[str], card: list[Any] | None) -> None:
    if card is not None and [str(c) for c in card] != [str(g) for g in got]:
        raise ModelError(f"{name}: the reproduced test split differs from the one in the model card.")


def _base(name: str, kind: str, n: int, source: str, split_rule: str) -> dict[str, Any]:
    spec = get_spec(name)
    return {"model": name, "kind": kind, "split": "test", "n": int(n),
            "weights_sha256": sha256_file(assets_dir() / spec.weights),
            "meta": {"data": source, "split_rule": split_rule,
                     "generated_by": f"python -m medai_core.train.heldout --models {name}", "reproduced": {}}}
