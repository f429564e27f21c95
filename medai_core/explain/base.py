"""Explainer registry, the ``Explanation`` type, and the per-model lock for Captum hooks."""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from medai_core.registry import Registry

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class Explanation:
    """Attributions shaped like one input sample (for images: (H, W) at model resolution).

    ``diagnostics`` carries method-specific checks, e.g. IG's convergence delta.
    """

    method: str
    target: str
    attributions: np.ndarray
    diagnostics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


EXPLAINERS: Registry[Callable[..., Explanation]] = Registry("explainer")


def register_explainer(name: str, *, modalities: set[str], label: str, signed: bool, passes: str = "",
                       params: dict[str, Any] | None = None,
                       hooks: bool = True) -> Callable[[Callable[..., Explanation]], Callable[..., Explanation]]:
    """Register an explainer function ``fn(model, x, target, *, progress=None, **params)``.

    One name may have an implementation per modality (``integrated_gradients`` explains images,
    records and notes); registering the same name again for other modalities adds them.
    ``EXPLAINERS.names(modalities=m)`` lists the explainers of modality ``m``;
    ``explainer_for(name, m)`` returns that modality's implementation and its metadata.

    Args:
        name: registry name (CLI ``--explain NAME``).
        modalities: which kinds of input this implementation explains.
        label: human name for the UI.
        signed: whether attributions carry a sign (evidence for and against).
        passes: a short cost description for the UI.
        params: default parameters (also the UI's choices).
        hooks: whether it puts hooks or gradients on the model (Captum does), so that it must run on the
            calling thread's private copy (``thread_copy``). ``False``: plain forward passes without gradients,
            safe on the shared model, so the workspaces skip the copy (the attention map).
    """
    impl_meta = {"label": label, "signed": signed, "passes": passes, "params": dict(params or {}), "hooks": hooks}

    def deco(fn: Callable[..., Explanation]) -> Callable[..., Explanation]:
        if name in EXPLAINERS:
            entry = EXPLAINERS.entry(name)
            clash = entry.meta["modalities"] & frozenset(modalities)
            if clash:
                raise ValueError(f"explainer {name!r} already registered for {sorted(clash)}")
            entry.meta["modalities"] = entry.meta["modalities"] | frozenset(modalities)
        else:
            EXPLAINERS.register(name, modalities=frozenset(modalities), impl={}, **impl_meta)(fn)
            entry = EXPLAINERS.entry(name)
        for m in modalities:
            entry.meta["impl"][m] = (fn, impl_meta)
        return fn

    return deco


def explainer_for(name: str, modality: str) -> tuple[Callable[..., Explanation], dict[str, Any]]:
    """The implementation of explainer ``name`` for ``modality`` and its metadata (label, signed, ...).

    Raises:
        UnknownName: no such explainer (with suggestions).
        InputError: the explainer exists but not for this modality.
    """
    from medai_core.errors import InputError

    entry = EXPLAINERS.entry(name)
    hit = entry.meta["impl"].get(modality)
    if hit is None:
        raise InputError(f"{entry.meta['label']} does not explain {modality} models; choose one of "
                         f"{', '.join(EXPLAINERS.names(modalities=modality))}.")
    return hit


_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.Lock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.Lock:
    """One lock per shared model: Captum registers hooks on the module, so explain calls on the
    same module are serialised (predictions under inference_mode need no lock)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def refine_steps(run: Callable[[int], Explanation], n_steps: int, max_relative_delta: float,
                 max_steps: int) -> Explanation:
    """Integrated Gradients until complete enough: ``run(n_steps)``, doubling the steps (up to
    ``max_steps``) while its completeness error exceeds ``max_relative_delta`` of the output difference.
    The returned explanation's ``params["n_steps"]`` is the step count used; ``seconds`` covers every pass."""
    import time

    t0 = time.perf_counter()
    while True:
        exp = run(n_steps)
        if exp.diagnostics["relative_delta"] <= max_relative_delta or n_steps * 2 > max_steps:
            break
        n_steps *= 2
    return Explanation(exp.method, exp.target, exp.attributions, exp.diagnostics, {**exp.params, "n_steps": n_steps},
                       time.perf_counter() - t0)


_RNG_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for one explainer call, without letting other threads' draws in.

    Captum's sampling (Shapley permutations, NoiseTunnel noise) draws from the process-wide generator;
    two sessions explaining at once would interleave their draws and get maps that differ from the
    same call made alone. The lock makes the seeded section atomic; the caller's state is restored.
    """
    with _RNG_LOCK:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.random.set_rng_state(state)


def cancellable(progress: ProgressFn | None, cancel: threading.Event) -> ProgressFn:
    """A progress callback that raises ``Cancelled`` once ``cancel`` is set.

    Explainers report progress after every batched pass (``CountingForward``), so a run stops within
    one batch of the request; the exception unwinds through Captum, whose hooks are removed in
    ``finally`` blocks, and reaches the caller as ``Cancelled`` (a ``MedAIError``, not an ``InputError``).
    """
    from medai_core.errors import Cancelled

    def report(fraction: float) -> None:
        if cancel.is_set():
            raise Cancelled("The explanation was cancelled.")
        if progress is not None:
            progress(fraction)

    return report


class CountingForward:
    """Wraps a model's forward to report progress as Captum evaluates batches (a progress callback
    may raise ``Cancelled`` to stop the run, see ``cancellable``)."""

    def __init__(self, model: nn.Module, expected_calls: int, progress: ProgressFn | None) -> None:
        self.model = model
        self.expected = max(int(expected_calls), 1)
        self.calls = 0
        self.progress = progress

    def __call__(self, x, *args):  # noqa: ANN001, ANN002 - tensors
        out = self.model(x, *args)
        self.calls += 1
        if self.progress is not None:
            self.progress(min(self.calls / self.expected, 1.0))
        return out


_COPIES_LOCK = threading.Lock()
_COPIES: dict[int, tuple[weakref.ref, list[list]]] = {}  # id(model) -> (model ref, [[owner thread ref, copy], ...])


def thread_copy(model: nn.Module) -> nn.Module:
    """This thread's private copy of a shared model, for attribution.

    Captum registers hooks on the module it explains; a hook on the shared model would also fire
    inside other sessions' predictions running at the same time. Each thread explains on its own
    copy (a few MB), kept for as long as the thread lives. Streamlit runs every page run on a new thread,
    so a copy whose thread has ended is handed to the next thread that asks instead of made again (making
    copies, BatchNorm folding included, was 9% of a loaded server's time; issue 18): at most one copy per
    thread running at the same time.
    """
    import copy

    me = threading.current_thread()
    with _COPIES_LOCK:
        entry = _COPIES.get(id(model))
        if entry is None or entry[0]() is not model:
            for k in [k for k, e in _COPIES.items() if e[0]() is None]:  # models no longer loaded: their copies go
                del _COPIES[k]
            entry = _COPIES[id(model)] = (weakref.ref(model), [])
        for slot in entry[1]:
            if slot[0]() is me:
                return slot[1]
        for slot in entry[1]:
            owner = slot[0]()
            if owner is None or not owner.is_alive():
                slot[0] = weakref.ref(me)
                return slot[1]
    clone = copy.deepcopy(model).eval()
    if callable(getattr(clone, "prepare_for_attribution", None)):
        clone = clone.prepare_for_attribution()  # e.g. BatchNorm folded, channels-last (busi_cnn)
    for p in clone.parameters():
        p.requires_grad_(False)  # attributions need input gradients only
    with _COPIES_LOCK:
        entry[1].append([weakref.ref(me), clone])
    return clone


_INFERENCE: dict[int, tuple[weakref.ref, int, nn.Module]] = {}  # id(model) -> (model ref, its version, copy)
_INFERENCE_LOCK = threading.Lock()


def _version(model: nn.Module) -> int:
    """Changes whenever a parameter or buffer of ``model`` is written in place (``load_state_dict`` included)."""
    return sum(t._version for t in model.parameters()) + sum(t._version for t in model.buffers())


def inference_copy(model: nn.Module) -> nn.Module:
    """One copy of a shared model per process for forward passes without hooks (predictions, attention maps):
    prepared as the attribution copies are (BatchNorm folded into the convolutions, channels-last), which is
    exact in eval mode up to float rounding (probabilities within 1e-6) and takes an EfficientNet pass from
    36 to 22 ms at one thread here (issue 18). Shared by every thread: a forward pass writes nothing. Made
    again when the model's weights or buffers change in place; a model without ``prepare_for_attribution``
    is its own inference copy."""
    import copy

    if not callable(getattr(model, "prepare_for_attribution", None)):
        return model
    version = _version(model)
    with _INFERENCE_LOCK:  # held while copying: ten first page runs at once wait for one copy, not make ten
        entry = _INFERENCE.get(id(model))
        if entry is not None and entry[0]() is model and entry[1] == version:
            return entry[2]
        clone = copy.deepcopy(model).eval().prepare_for_attribution()
        for p in clone.parameters():
            p.requires_grad_(False)
        for k in [k for k, e in _INFERENCE.items() if e[0]() is None]:
            del _INFERENCE[k]
        _INFERENCE[id(model)] = (weakref.ref(model), version, clone)
        return clone
