"""Cascading model randomisation (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

The model's parameterised layers are re-initialised cumulatively from the output layer down to the
input; the explainer runs again after each stage and each map is compared with the trained model's by
Spearman rank correlation, signed and of absolute values (magnitudes can stay correlated on a random
network: ~0.7 on the records model, because any network responds most to features far from the
reference; the sign carries the learned evidence). A map that survives randomisation shows the input,
not what the model learned. The verdict reads the signed correlation of the fully randomised map, the
map as shown (for unsigned methods such as Grad-CAM the two coincide): ``passes`` when
``|rho| <= RANDOMISATION_PASS``, ``fails`` when ``|rho| > RANDOMISATION_FAIL``, ``weak`` in between.

Layer groups (``layer_groups``): the model's top-level named children that hold parameters
(``nn.ModuleList`` / ``nn.ModuleDict`` containers are expanded into their elements), plus one group for
parameters the model holds itself (a CLS token, position embeddings). The stages follow the **forward
execution order** observed by forward pre-hooks while the trained model's map is computed (the first
cascade on a model; then remembered), reversed. The model's own parameters go right after the first
group called (in the shipped models they join the input embedding: ``cls`` after the feature
tokenizer, ``pos`` after the word embedding); groups the forward pass never calls stay at the input
end in registration order. An explainer that never calls the model gets registration order, reported
in ``CascadeResult.order``.

Each stage's model is a deep copy of the trained model (which is never touched) with its groups
re-initialised by ``reinit_`` (buffers such as input normalisation kept), each group from its
own seed derived from ``(seed, group name)``, so a copy depends only on which groups are randomised.
Copies are cached per trained model (weakly keyed: they go when the model goes) and per
``(seed, randomised groups)``, least recently used first out beyond ``CACHE_SIZE``; asking again is cheap.
The explainer runs on the copies under a per-copy lock (Captum hooks a module; two threads never hook
the same copy at once). Caches assume the trained model's weights do not change after loading.
"""
from __future__ import annotations

import copy
import threading
import time
import weakref
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from medai_core.explain.base import ProgressFn, seeded

# |Spearman rho| between the trained map and the fully randomised model's map at or below which the map
# passes (Adebayo et al. read rank correlations near 0 as "depends on the model"; 0.3 is a weak correlation
# by the usual convention), and above which it fails (a strong correlation: the map survives randomisation).
RANDOMISATION_PASS = 0.3
RANDOMISATION_FAIL = 0.6
CACHE_SIZE = 16  # randomised copies kept per trained model (a cascade needs groups + 1; busi_cnn 7)

ExplainFn = Callable[[nn.Module], np.ndarray]
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def _r(v: float, nd: int = 6) -> float:
    return round(float(v), nd)


def reinit_(module: nn.Module) -> None:
    """Re-initialise every parameter of ``module`` and its submodules in place, from torch's global
    generator (wrap the call in ``seeded``); buffers (input normalisation, running statistics) are kept.

    Norm layers get weights ~ N(1, 0.1) and biases ~ N(0, 0.1) (their ``reset_parameters`` would also
    reset the running statistics, and ones/zeros would hide nothing); conv, linear, embedding, GRU and our
    own modules' free parameters (feature tokenizer, CLS token, positions) use ``reset_parameters()``. A
    module with parameters of its own but no ``reset_parameters`` gets N(0, std of the trained values).
    """
    for m in module.modules():
        if isinstance(m, _NORMS):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.1)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, 0.1)
        elif callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
        else:
            for p in m.parameters(recurse=False):
                reinit_parameter_(p)


def reinit_parameter_(p: torch.Tensor) -> None:
    """A free parameter redrawn from N(0, std of its trained values) (0.1 for a single value or a constant)."""
    with torch.no_grad():
        std = float(p.std()) if p.numel() > 1 else 0.0
        p.normal_(0.0, std if std > 0 else 0.1)


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy with every conv/linear/embedding/norm layer and free parameter re-initialised (full cascading randomisation);
    buffers such as input normalisation are kept. The shared trained model is never touched."""
    rnd = copy.deepcopy(model)
    with seeded(seed):
        reinit_(rnd)
    return rnd.eval()


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------- deletion / insertion


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two maps (Pearson correlation of their ranks, ties sharing their mean rank,
    as ``scipy.stats.spearmanr``; NumPy only, sparing the 1.5 s first import of ``scipy.stats``);
    0 when either is constant (no ranking to share)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    ra, rb = _mean_ranks(a), _mean_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float(np.clip((ra @ rb) / np.sqrt((ra @ ra) * (rb @ rb)), -1.0, 1.0))


def _mean_ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    s = a[order]
    new = np.concatenate(([True], s[1:] != s[:-1]))  # first element of each run of ties
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, a.size))
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(starts + (counts - 1) / 2.0, counts)
    return ranks


@dataclass(frozen=True)
class LayerGroup:
    """Parameters randomised together at one cascade stage.

    ``name`` is a dotted submodule path (``layer4``, ``blocks.1``) or, for the model's own parameters
    (``own=True``), their names joined by ``+`` (``cls``, ``pos``), listed in ``parameters``.
    """

    name: str
    own: bool = False
    parameters: tuple[str, ...] = ()


def layer_groups(model: nn.Module) -> tuple[LayerGroup, ...]:
    """The model's parameterised layer groups in registration order (see the module docstring)."""
    groups: list[LayerGroup] = []

    def visit(prefix: str, mod: nn.Module) -> None:
        for name, child in mod.named_children():
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)):  # containers have no forward to hook
                visit(f"{prefix}{name}.", child)
            elif next(child.parameters(), None) is not None:
                groups.append(LayerGroup(f"{prefix}{name}"))

    visit("", model)
    own = tuple(n for n, _ in model.named_parameters(recurse=False))
    if own:
        groups.insert(min(1, len(groups)), LayerGroup("+".join(own), True, own))
    return tuple(groups)


def randomisation_verdict(rank_corr: float, abs_rank_corr: float | None = None) -> tuple[str, str]:
    """Verdict and plain-language sentence for the rank correlation between the trained model's map and
    the fully randomised model's (``abs_rank_corr``: of absolute values, adds a caveat when high).

    Returns:
        ("passes" | "weak" | "fails", message).
    """
    r = abs(float(rank_corr))
    if r <= RANDOMISATION_PASS:
        verdict = "passes"
        msg = (f"Passes: with every layer randomised the map changes completely (rank correlation {rank_corr:+.2f} "
               "with the trained model's); it depends on what the model learned.")
        if abs_rank_corr is not None and abs(abs_rank_corr) > RANDOMISATION_FAIL:
            msg += (f" The sizes of the attributions stay correlated ({abs_rank_corr:+.2f}): read which way each one "
                    "points (for or against), not only how large it is.")
    elif r <= RANDOMISATION_FAIL:
        verdict = "weak"
        msg = (f"Weak: with every layer randomised the map still resembles the trained model's (rank correlation "
               f"{rank_corr:+.2f}); part of it reflects the input itself rather than what the model learned.")
    else:
        verdict = "fails"
        msg = (f"Fails — the map does not depend on what the model learned: a randomised model gives nearly the "
               f"same map (rank correlation {rank_corr:+.2f}). It mostly reflects the input, not the model.")
    return verdict, msg


@dataclass(frozen=True)
class CascadeStage:
    """One stage: ``group`` randomised on top of the groups before it (``randomised``, output first)."""

    index: int
    group: str
    randomised: tuple[str, ...]
    attributions: np.ndarray
    rank_correlation: float
    abs_rank_correlation: float
    pearson_abs: float

    @property
    def name(self) -> str:
        """The layers randomised so far, e.g. ``fc + layer4``."""
        return " + ".join(self.randomised)

    def to_json(self, include_map: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.index, "group": self.group, "randomised": list(self.randomised),
                               "rank_correlation": _r(self.rank_correlation),
                               "abs_rank_correlation": _r(self.abs_rank_correlation),
                               "pearson_abs": _r(self.pearson_abs)}
        if include_map:
            out["attributions"] = np.round(self.attributions, 8).tolist()
        return out


@dataclass(frozen=True)
class CascadeResult:
    """The trained model's map, one map per cascade stage (output layer first), and the verdict.

    ``rank_correlation`` / ``abs_rank_correlation`` are the fully randomised stage's; ``order`` says how
    the stage order was found ("forward" pass or "registration").
    """

    trained: np.ndarray
    stages: tuple[CascadeStage, ...]
    verdict: str
    message: str
    rank_correlation: float
    abs_rank_correlation: float
    order: str
    seed: int
    seconds: float

    @property
    def randomised(self) -> np.ndarray:
        """The fully randomised model's map."""
        return self.stages[-1].attributions

    def to_json(self, include_maps: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "message": self.message,
                               "rank_correlation": _r(self.rank_correlation),
                               "abs_rank_correlation": _r(self.abs_rank_correlation),
                               "pass_threshold": RANDOMISATION_PASS, "fail_threshold": RANDOMISATION_FAIL,
                               "order": self.order, "seed": self.seed, "seconds": _r(self.seconds, 3),
                               "stages": [s.to_json(include_maps) for s in self.stages]}
        if include_maps:
            out["trained"] = np.round(self.trained, 8).tolist()
        return out


class _Copies:
    """Per trained model: its layer groups, their top-down order once known, and the cached copies."""

    def __init__(self, groups: tuple[LayerGroup, ...]) -> None:
        self.registration = groups
        self.by_name = {g.name: g for g in groups}
        self.top_down: tuple[LayerGroup, ...] | None = None
        self.copies: OrderedDict[tuple[int, frozenset[str]], tuple[nn.Module, threading.Lock]] = OrderedDict()
        self.lock = threading.Lock()


_ENTRIES: "weakref.WeakKeyDictionary[nn.Module, _Copies]" = weakref.WeakKeyDictionary()
_ENTRIES_GUARD = threading.Lock()


def _entry(model: nn.Module) -> _Copies:
    with _ENTRIES_GUARD:
        e = _ENTRIES.get(model)
        if e is None:
            e = _ENTRIES[model] = _Copies(layer_groups(model))
        return e


def _group_seed(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}:{name}".encode())  # stable across processes (str hash is salted)


def _reinit_own_(model: nn.Module, names: tuple[str, ...]) -> None:
    """Re-initialise the model's own parameters ``names`` only (its ``reset_parameters`` may reach further:
    everything else is put back)."""
    if callable(getattr(model, "reset_parameters", None)):
        keep = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in names}
        model.reset_parameters()
        state = model.state_dict()
        with torch.no_grad():
            for k, v in keep.items():
                state[k].copy_(v)
    else:
        for n in names:
            reinit_parameter_(getattr(model, n))


def _copy(model: nn.Module, randomised: frozenset[str], seed: int) -> tuple[nn.Module, threading.Lock]:
    """The cached copy of ``model`` with the groups ``randomised`` re-initialised, and its run lock."""
    e = _entry(model)
    key = (seed if randomised else 0, randomised)
    with e.lock:
        hit = e.copies.get(key)
        if hit is not None:
            e.copies.move_to_end(key)
            return hit
        # always from the shared model: it never carries hooks, while a cached copy may be mid-explanation
        clone = copy.deepcopy(model)
        for name in sorted(randomised):
            g = e.by_name[name]
            with seeded(_group_seed(seed, name)):
                if g.own:
                    _reinit_own_(clone, g.parameters)
                else:
                    reinit_(clone.get_submodule(name))
        clone.eval()
        for p in clone.parameters():
            p.requires_grad_(False)  # attributions need input gradients only
        hit = e.copies[key] = (clone, threading.Lock())
        while len(e.copies) > CACHE_SIZE:
            e.copies.popitem(last=False)
        return hit


def randomised_layers(model: nn.Module, groups: tuple[str, ...] | list[str] = (), seed: int = 0) -> nn.Module:
    """The cached private copy of ``model`` with the named layer groups re-initialised (none: a trained copy).

    The same call returns the same object while it stays in the cache. Run explainers on it, never
    train it. Raises ``KeyError`` for a name not in ``layer_groups(model)``.
    """
    e = _entry(model)
    unknown = [g for g in groups if g not in e.by_name]
    if unknown:
        raise KeyError(f"not a layer group of this model: {unknown}; groups: {[g.name for g in e.registration]}")
    return _copy(model, frozenset(groups), seed)[0]


def _recorder(first: dict[str, int], name: str) -> Callable[..., None]:
    def hook(*_: Any) -> None:  # returns None: a pre-hook's return value would replace the module's input
        first.setdefault(name, len(first))

    return hook


def _forward_order(groups: tuple[LayerGroup, ...], first: dict[str, int]) -> tuple[LayerGroup, ...]:
    called = sorted((g for g in groups if not g.own and g.name in first), key=lambda g: first[g.name])
    uncalled = [g for g in groups if not g.own and g.name not in first]
    own = [g for g in groups if g.own]
    return tuple(uncalled + called[:1] + own + called[1:])


def cascading_randomisation(model: nn.Module, explain_fn: ExplainFn, *, seed: int = 0,
                            progress: ProgressFn | None = None) -> CascadeResult:
    """Cascading model-randomisation check of the map ``explain_fn`` draws (Adebayo et al. 2018).

    Args:
        model: the trained (shared) model; it is never modified.
        explain_fn: ``explain_fn(module) -> attributions``; called with private copies (the trained one
            first, then one per stage) under a per-copy lock; it must not copy the module again.
        seed: seed of the re-initialisation.
        progress: called with the fraction of maps done.

    Returns:
        The trained map, one ``CascadeStage`` per layer group (output layer first) and the verdict.
    """
    t0 = time.perf_counter()
    e = _entry(model)
    if not e.registration:
        raise ValueError("the model has no parameters to randomise")
    trained_copy, lock = _copy(model, frozenset(), 0)
    with lock:
        top_down = e.top_down
        first: dict[str, int] = {}
        handles = []
        if top_down is None:
            for g in e.registration:
                if not g.own:
                    handles.append(trained_copy.get_submodule(g.name).register_forward_pre_hook(_recorder(first, g.name)))
        try:
            trained = np.asarray(explain_fn(trained_copy), dtype=np.float64)
        finally:
            for h in handles:
                h.remove()
    order = "forward"
    if top_down is None:
        if first:
            top_down = tuple(reversed(_forward_order(e.registration, first)))
            with e.lock:
                e.top_down = e.top_down or top_down
        else:
            top_down, order = tuple(reversed(e.registration)), "registration"
    n = len(top_down)
    if progress:
        progress(1 / (n + 1))
    stages, done = [], []
    for i, g in enumerate(top_down):
        done.append(g.name)
        m, lock = _copy(model, frozenset(done), seed)
        with lock:
            a = np.asarray(explain_fn(m), dtype=np.float64)
        stages.append(CascadeStage(i + 1, g.name, tuple(done), a, rank_correlation(trained, a),
                                   rank_correlation(np.abs(trained), np.abs(a)), _pearson(np.abs(trained), np.abs(a))))
        if progress:
            progress((i + 2) / (n + 1))
    last = stages[-1]
    verdict, msg = randomisation_verdict(last.rank_correlation, last.abs_rank_correlation)
    if np.ptp(last.attributions) == 0:  # e.g. Grad-CAM's ReLU on a random network: nothing left to rank
        msg += " The fully randomised model's map is blank."
    return CascadeResult(trained, tuple(stages), verdict, msg, last.rank_correlation, last.abs_rank_correlation,
                         order, seed, time.perf_counter() - t0)
