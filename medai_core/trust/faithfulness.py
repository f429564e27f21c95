"""Faithfulness: deletion and insertion (Petsiuk et al., RISE, BMVC 2018; Samek et al. 2017).

Units of the input (8 x 8 pixel patches, features, words, (hour, signal) cells) are ranked by their summed
attribution, **signed evidence for the target first** by default (``order="positive"``; ``"absolute"``
ranks by size). Deletion replaces the top fraction with the reference and records the model's score;
insertion starts from the reference and restores the top fraction. The area under each curve
(trapezoid over the fraction 0..1) is compared with the mean over ``n_random`` seeded random orders:
a faithful map deletes to a lower area and inserts to a higher one than random. All perturbed inputs
are scored in batches under ``torch.inference_mode`` on the shared model (predictions need no lock).

References per modality: images, the training-mean grey (the Occlusion explainer's fill, zero after
the model's normalisation; ``baseline=`` takes any IG baseline name); records, the reference patient
the explainers use (``workspaces.records.reference_record``); notes, the word removed (its id becomes padding,
which the model masks out; the other words keep their positions); series, the training mean with what
was measured, and when, kept (as series IG). Scores: calibrated probability of the target class;
calibrated risk for records; the median forecast, in the signal's units, for forecasters.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from medai_core.explain.base import ProgressFn

N_STEPS = 20  # fractions 0, 1/20, ..., 1 of the units for deletion and insertion
N_RANDOM = 5  # random orders the attribution order is compared with
FLAT_TOLERANCE = 1e-6  # a score range below this (relative) means the model ignores the perturbation

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def _r(v: float, nd: int = 6) -> float:
    return round(float(v), nd)


def faithfulness_verdict(deletion_auc: float, deletion_auc_random: float, insertion_auc: float,
                         insertion_auc_random: float, *, flat: bool = False, score: str = "the score",
                         unit: str = "parts") -> tuple[str, str]:
    """Verdict and plain-language sentence for deletion/insertion areas against random orders.

    Returns:
        ("faithful" | "partly faithful" | "not faithful" | "uninformative", message).
    """
    if flat:
        return "uninformative", (f"Uninformative: {score} does not change when the input is replaced by the "
                                 "reference, so this test cannot judge the map.")
    d = deletion_auc < deletion_auc_random
    i = insertion_auc > insertion_auc_random
    nums = (f"(deletion area {deletion_auc:.3g} vs {deletion_auc_random:.3g} in random order; "
            f"insertion area {insertion_auc:.3g} vs {insertion_auc_random:.3g})")
    if d and i:
        return "faithful", (f"Faithful: removing the most highlighted {unit} first lowers {score} faster than "
                            f"removing them in random order, and restoring them first raises it faster {nums}: "
                            "the map points at what the model uses.")
    if d or i:
        which = "removing" if d else "restoring"
        return "partly faithful", (f"Partly faithful: only {which} the most highlighted {unit} first moves {score} "
                                   f"faster than a random order {nums}.")
    return "not faithful", (f"Not faithful: removing or restoring the most highlighted {unit} first moves {score} no "
                            f"faster than a random order {nums}; the map does not show what drives this output.")


@dataclass(frozen=True)
class FaithfulnessCurves:
    """Deletion and insertion curves of a map, against random orders.

    ``fractions`` (n,) of the units removed (deletion) or restored (insertion); ``deletion`` and
    ``insertion`` the score there in the map's order; ``*_random`` the mean curves over the random
    orders; ``*_auc`` trapezoid areas over 0..1 (random: mean and standard deviation over the orders).
    ``score_input`` / ``score_reference``: the score of the untouched input and of the reference.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_random: np.ndarray
    insertion_random: np.ndarray
    deletion_auc: float
    deletion_auc_random: float
    deletion_auc_random_std: float
    insertion_auc: float
    insertion_auc_random: float
    insertion_auc_random_std: float
    score_input: float
    score_reference: float
    n_units: int
    n_random: int
    unit: str
    reference: str
    score: str
    order: str
    verdict: str
    message: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        def arr(a: np.ndarray) -> list[float]:
            return [_r(v) for v in a]

        return {"verdict": self.verdict, "message": self.message, "score": self.score, "unit": self.unit,
                "reference": self.reference, "order": self.order, "n_units": self.n_units, "n_random": self.n_random,
                "score_input": _r(self.score_input), "score_reference": _r(self.score_reference),
                "deletion_auc": _r(self.deletion_auc), "deletion_auc_random": _r(self.deletion_auc_random),
                "deletion_auc_random_std": _r(self.deletion_auc_random_std),
                "insertion_auc": _r(self.insertion_auc), "insertion_auc_random": _r(self.insertion_auc_random),
                "insertion_auc_random_std": _r(self.insertion_auc_random_std),
                "fractions": arr(self.fractions), "deletion": arr(self.deletion), "insertion": arr(self.insertion),
                "deletion_random": arr(self.deletion_random), "insertion_random": arr(self.insertion_random),
                "seconds": _r(self.seconds, 3)}


def faithfulness_curves(score_fn: ScoreFn, x: torch.Tensor, reference: torch.Tensor, units: torch.Tensor,
                        unit_attributions: np.ndarray, *, n_steps: int = N_STEPS, n_random: int = N_RANDOM,
                        seed: int = 0, order: str = "positive", batch_size: int = 64, score: str = "the score",
                        unit: str = "parts", reference_name: str = "reference",
                        progress: ProgressFn | None = None) -> FaithfulnessCurves:
    """Deletion and insertion curves for one input sample, any modality.

    Args:
        score_fn: ``score_fn(batch) -> (B,)`` for a batch of perturbed samples shaped ``(B, *x.shape)``;
            called under ``torch.inference_mode``.
        x: one input sample (no batch dimension).
        reference: what a removed unit becomes, shaped like ``x`` (or broadcastable to it).
        units: integer unit of every element, broadcastable to ``x`` with the same number of dimensions;
            values ``0..U-1``, or ``-1`` for elements never changed (CLS token, padding).
        unit_attributions: (U,) attribution of each unit (the map summed over the unit).
        n_steps: fractions 0, 1/n_steps, ..., 1 (rounded to whole units, duplicates dropped).
        n_random: seeded random orders to compare with.
        order: "positive" (signed evidence for the target first; default) or "absolute" (largest first).
            Ties are broken in a seeded random order.
        batch_size: perturbed samples per forward pass.
        score, unit, reference_name: words for the verdict and the JSON.
        progress: called with the fraction of batches scored.
    """
    t0 = time.perf_counter()
    attr = np.asarray(unit_attributions, dtype=np.float64).ravel()
    n = attr.size
    units = torch.as_tensor(units, dtype=torch.long)
    if n == 0 or int(units.max()) >= n or units.dim() != x.dim():
        raise ValueError(f"units must hold ids 0..{n - 1} (or -1) with x's {x.dim()} dimensions")
    if order not in ("positive", "absolute"):
        raise ValueError("order must be 'positive' or 'absolute'")
    idx = torch.where(units < 0, torch.full_like(units, n), units)  # id n: never changed
    rng = np.random.default_rng(seed)
    key = attr if order == "positive" else np.abs(attr)
    orders = [np.lexsort((rng.random(n), -key))] + [rng.permutation(n) for _ in range(n_random)]
    ks = np.unique(np.round(np.linspace(0.0, 1.0, max(int(n_steps), 1) + 1) * n).astype(int))
    inner = ks[(ks > 0) & (ks < n)]
    masks = [np.ones(n, bool), np.zeros(n, bool)]  # keep everything (the input), keep nothing (the reference)
    for o in orders:
        rank = np.empty(n, int)
        rank[o] = np.arange(n)
        masks += [rank >= k for k in inner]  # deletion: the top k are replaced
        masks += [rank < k for k in inner]  # insertion: only the top k are restored
    scores = _score_masks(score_fn, x, reference, idx, np.stack(masks), batch_size, progress)
    s_in, s_ref = float(scores[0]), float(scores[1])
    m = len(inner)
    curves_del, curves_ins = [], []
    for j in range(len(orders)):
        base = 2 + 2 * m * j
        curves_del.append(np.concatenate([[s_in], scores[base:base + m], [s_ref]]))
        curves_ins.append(np.concatenate([[s_ref], scores[base + m:base + 2 * m], [s_in]]))
    fr = ks / n
    auc_del = np.array([np.trapezoid(c, fr) for c in curves_del])
    auc_ins = np.array([np.trapezoid(c, fr) for c in curves_ins])
    rand_del = auc_del[1:] if n_random else auc_del[:1]
    rand_ins = auc_ins[1:] if n_random else auc_ins[:1]
    flat = float(np.ptp(scores)) <= FLAT_TOLERANCE * max(1.0, abs(s_in))
    verdict, msg = faithfulness_verdict(float(auc_del[0]), float(rand_del.mean()), float(auc_ins[0]),
                                        float(rand_ins.mean()), flat=flat, score=score, unit=unit)
    rd = np.mean(curves_del[1:], 0) if n_random else curves_del[0]
    ri = np.mean(curves_ins[1:], 0) if n_random else curves_ins[0]
    return FaithfulnessCurves(fr, curves_del[0], curves_ins[0], rd, ri, float(auc_del[0]), float(rand_del.mean()),
                              float(rand_del.std()), float(auc_ins[0]), float(rand_ins.mean()), float(rand_ins.std()),
                              s_in, s_ref, n, n_random, unit, reference_name, score, order, verdict, msg,
                              time.perf_counter() - t0)


def _score_masks(score_fn: ScoreFn, x: torch.Tensor, reference: torch.Tensor, idx: torch.Tensor, masks: np.ndarray,
                 batch_size: int, progress: ProgressFn | None) -> np.ndarray:
    out = []
    n_batches = math.ceil(len(masks) / batch_size)
    with torch.inference_mode():
        for b in range(n_batches):
            mk = torch.from_numpy(masks[b * batch_size:(b + 1) * batch_size])
            keep = torch.cat([mk, torch.ones(len(mk), 1, dtype=torch.bool)], 1)[:, idx]  # (B, *units.shape)
            out.append(score_fn(torch.where(keep, x, reference)).double().reshape(-1))
            if progress:
                progress((b + 1) / n_batches)
    return torch.cat(out).numpy()


# ---------------------------------------------------------------- the two checks together
