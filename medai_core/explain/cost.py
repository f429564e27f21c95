"""What an attribution costs: a memory budget that sizes Captum's internal batches, and a time
estimate measured on this machine before a costly attribution starts.

Memory. Every explainer evaluates the model on batches of perturbed or interpolated copies of the
input (IG's ``internal_batch_size``, Occlusion's ``perturbations_per_eval``, NoiseTunnel's
``nt_samples_batch_size``). ``batch_for_budget`` sizes those batches so that one batch's activations
fit a budget (``MEDAI_ATTRIBUTION_MEMORY_MB``, default 1024 MB): a long note, a large scan or
many IG steps then take more batches, never more memory.

Time. ``estimate_seconds`` counts the batched passes a method will make (the same batch sizes the
explainer will use) and multiplies by a pass time measured here, once per model architecture, input
shape, batch and pass kind (warm-up + median of 3), so the page can say "about 4 s" before it starts.
"""
from __future__ import annotations

import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from medai_core.errors import ConfigError, InputError

MEMORY_ENV = "MEDAI_ATTRIBUTION_MEMORY_MB"
DEFAULT_MEMORY_MB = 1024.0
# Batches larger than this gain no speed on a CPU (per-batch overhead is already amortised) and
# only raise the peak; explainers whose inputs are tiny pass a larger cap (see ``caps`` below).
MAX_BATCH = 64
# A forward pass under no_grad frees each activation once the next layer has used it, so the sum of
# every leaf module's output bytes is already an upper bound. A pass with a backward keeps every
# activation for autograd, then allocates a gradient of each during the backward, and Captum holds
# the expanded inputs and their gradients besides: budgeted at 3x the forward sum. Both rules are
# upper bounds: on busi_cnn (8.1 MB of leaf outputs per 128 x 128 row) the peak RSS rise measured for
# IG with 32 steps per batch was 280 MB (780 MB budgeted), for occlusion with 64 windows 190 MB (520).
BACKWARD_FACTOR = 3

Args = tuple[torch.Tensor, ...]


def attribution_memory_mb(value: str | None = None) -> float:
    """The memory budget for one attribution's batches, in MB.

    Read from ``MEDAI_ATTRIBUTION_MEMORY_MB`` (``value`` overrides the environment, for tests). Unset
    or empty means the default (1024). Anything else must be a positive number of megabytes.

    Raises:
        ConfigError: the variable is set to something that is not a positive finite number (a
            deployment mistake, so it is reported rather than silently replaced by the default).
    """
    raw = os.environ.get(MEMORY_ENV) if value is None else value
    if raw is None or not raw.strip():
        return DEFAULT_MEMORY_MB
    try:
        mb = float(raw)
    except ValueError:
        raise ConfigError(f"{MEMORY_ENV} must be a number of megabytes (e.g. 1024), not {raw.strip()[:20]!r}.") from None
    if not (math.isfinite(mb) and mb > 0):
        raise ConfigError(f"{MEMORY_ENV} must be a positive number of megabytes, not {raw.strip()[:20]!r}.")
    return mb


def _as_args(x: torch.Tensor | Sequence[torch.Tensor]) -> Args:
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def _arch_key(module: nn.Module) -> int:
    """The same for a model and its ``thread_copy`` (and any model of the same architecture): cost
    depends on layer shapes, not on weights."""
    parts = [type(module).__qualname__]
    parts += [f"{n}:{tuple(t.shape)}:{t.dtype}" for n, t in module.named_parameters()]
    parts += [f"{n}:{tuple(t.shape)}" for n, t in module.named_buffers()]
    parts += [type(m).__qualname__ for m in module.modules()]
    return hash(tuple(parts))


def _row_key(args: Args) -> tuple:
    return tuple((tuple(a.shape[1:]), a.dtype) for a in args)


def _rows(args: Args, n: int) -> Args:
    """``n`` copies of the first row of every argument (the batch an explainer feeds the model)."""
    return tuple(a[:1].repeat(n, *([1] * (a.dim() - 1))) for a in args)


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if next(m.children(), None) is None]


_CACHE_LOCK = threading.Lock()
_ROW_BYTES: dict[tuple, int] = {}
_PASS_SECONDS: dict[tuple, float] = {}


def activation_bytes(module: nn.Module, x: torch.Tensor | Sequence[torch.Tensor]) -> int:
    """Bytes of every leaf module's outputs for one row of ``x`` (forward hooks, no_grad), cached per
    (architecture, row shape). ``x`` is the input, or the tuple of forward arguments, batch first."""
    args = _as_args(x)
    key = (_arch_key(module), _row_key(args))
    with _CACHE_LOCK:
        hit = _ROW_BYTES.get(key)
    if hit is not None:
        return hit
    total = 0

    def count(_m: nn.Module, _i: Any, out: Any) -> None:
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.nelement() * t.element_size()

    hooks = [m.register_forward_hook(count) for m in _leaves(module)]
    try:
        with torch.no_grad():
            module(*_rows(args, 1))
    finally:
        for h in hooks:
            h.remove()
    total = max(total, 1)
    with _CACHE_LOCK:
        return _ROW_BYTES.setdefault(key, total)


def batch_for_budget(module: nn.Module, x: torch.Tensor | Sequence[torch.Tensor], budget_mb: float,
                     backward: bool, cap: int = MAX_BATCH) -> int:
    """Rows per batch that keep one batch's activations within ``budget_mb``.

    ``budget // (activation_bytes of one row x (3 if backward else 1))``, rounded down to a power of
    two (IG's default step counts then split into equal batches), at least 1 and at most ``cap``.
    Monotonic in the budget. Runs one forward pass of one row the first time per architecture and
    input shape; call it on the explainer's own (``thread_copy``) module, never one that other threads
    are using for predictions (it registers hooks).
    """
    per_row = activation_bytes(module, x) * (BACKWARD_FACTOR if backward else 1)
    n = int(budget_mb * 2**20 // per_row)
    if n < 1:
        return 1
    return max(1, min(int(cap), 2 ** (n.bit_length() - 1)))


def resolve_batch(module: nn.Module, x: torch.Tensor | Sequence[torch.Tensor], backward: bool, cap: int,
                  batch: int | None = None, memory_mb: float | None = None) -> int:
    """An explicit ``batch`` if given (checked), else the budget's batch (``memory_mb`` or the
    environment's)."""
    if batch is not None:
        if int(batch) < 1:
            raise InputError(f"The batch size must be at least 1, not {batch}.")
        return int(batch)
    return batch_for_budget(module, x, attribution_memory_mb() if memory_mb is None else memory_mb, backward, cap)


# ---- pass timing -------------------------------------------------------------------------------

def _float_leaf(_m: nn.Module, _i: Any, out: Any) -> Any:
    # integer inputs (token ids) start the gradient at the first float activation, as
    # LayerIntegratedGradients does at the embeddings
    if isinstance(out, torch.Tensor) and out.is_floating_point() and not out.requires_grad:
        return out.detach().requires_grad_(True)
    return None


def _one_pass(module: nn.Module, args: Args, backward: bool) -> None:
    if not backward:
        with torch.no_grad():
            module(*args)
        return
    first = args[0].detach().clone().requires_grad_(True) if args[0].is_floating_point() else args[0]
    hooks = [m.register_forward_hook(_float_leaf) for m in _leaves(module)]
    try:
        with torch.enable_grad():
            out = module(first, *args[1:])
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.reshape(out.shape[0], -1)[:, 0].sum().backward()
    finally:
        for h in hooks:
            h.remove()


def pass_seconds(module: nn.Module, x: torch.Tensor | Sequence[torch.Tensor], rows: int, backward: bool,
                 repeats: int = 3) -> float:
    """Seconds of one pass of ``rows`` rows (forward, or forward + backward to the input), measured on
    this machine: one warm-up, then the median of ``repeats``; cached per (architecture, row shape,
    rows, backward)."""
    args = _as_args(x)
    key = (_arch_key(module), _row_key(args), int(rows), bool(backward))
    with _CACHE_LOCK:
        hit = _PASS_SECONDS.get(key)
    if hit is not None:
        return hit
    batch = _rows(args, rows)
    _one_pass(module, batch, backward)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _one_pass(module, batch, backward)
        times.append(time.perf_counter() - t0)
    with _CACHE_LOCK:
        return _PASS_SECONDS.setdefault(key, statistics.median(times))


def clear_caches() -> None:
    """Forget measured activation sizes and pass times (tests; after a hardware change)."""
    with _CACHE_LOCK:
        _ROW_BYTES.clear()
        _PASS_SECONDS.clear()


# ---- pass plans --------------------------------------------------------------------------------

Plan = list[tuple[int, int, bool]]  # (number of passes, rows per pass, with backward)


def chunks(n: int, size: int, backward: bool, times: int = 1, rows_per: int = 1) -> Plan:
    """``n`` items in batches of ``size`` items (each item ``rows_per`` rows), ``times`` over."""
    full, rest = divmod(n, size)
    plan = [(full * times, size * rows_per, backward)] if full else []
    if rest:
        plan.append((times, rest * rows_per, backward))
    return plan


def image_windows(h: int, w: int, window: int, stride: int) -> int:
    """Occlusion window positions on an ``h`` x ``w`` image."""
    return (math.floor((h - window) / stride) + 1) * (math.floor((w - window) / stride) + 1)


@dataclass(frozen=True)
class Estimate:
    """Predicted cost of one attribution on this machine.

    Attributes:
        seconds: the run as asked (for IG: the first pass at ``n_steps``).
        seconds_max: the worst case (IG doubles its steps up to ``max_steps`` while the completeness
            error exceeds 1%); equals ``seconds`` for methods that do not refine.
        passes: batched model passes of the run as asked (forward, or forward + backward).
        pass_seconds: measured seconds of one full batch of the method's main pass.
        batch: rows per batch the explainer will use (from the memory budget).
        note: one line for the page, e.g. "4 batches of 16 steps x 0.21 s (forward + backward)".
    """

    seconds: float
    seconds_max: float
    passes: int
    pass_seconds: float
    batch: int
    note: str


def _plan_seconds(module: nn.Module, args: Args, plan: Plan) -> float:
    """Measured time of the plan's largest batch (and of one row) per pass kind; the remainder
    batches in between are interpolated linearly, so calibrating costs a few passes, not one per size."""
    biggest: dict[bool, int] = {}
    for count, rows, backward in plan:
        if count:
            biggest[backward] = max(biggest.get(backward, 0), rows)
    total = 0.0
    for count, rows, backward in plan:
        if not count:
            continue
        top = biggest[backward]
        if rows in (1, top):
            t = pass_seconds(module, args, rows, backward)
        else:
            t1, tb = pass_seconds(module, args, 1, backward), pass_seconds(module, args, top, backward)
            t = t1 + (tb - t1) * (rows - 1) / (top - 1)
        total += count * t
    return total


def doublings(n_steps: int, max_steps: int) -> list[int]:
    steps = [n_steps]
    while steps[-1] * 2 <= max_steps:
        steps.append(steps[-1] * 2)
    return steps


PlanFn = Callable[[nn.Module, Any, Mapping[str, Any], "float | None"], "Estimate"]
_PLANS: dict[tuple[str, str], PlanFn] = {}


def register_plan(modality: str, *methods: str) -> Callable[[PlanFn], PlanFn]:
    """Register how ``methods`` on ``modality`` models spend their passes (beside each explainer).

    The plan function takes ``(model, x, params, memory_mb)``, with the explainer's defaults filled in
    ``params``, and returns ``finish(...)`` of its pass plan. Registered from the explainer's own
    module, so this module never imports the explainers.
    """
    def deco(fn: PlanFn) -> PlanFn:
        for method in methods:
            _PLANS[(modality, method)] = fn
        return fn
    return deco


def estimate_seconds(model: nn.Module, spec_modality: str, x: Any, method: str,
                     params: Mapping[str, Any] | None = None, memory_mb: float | None = None) -> Estimate:
    """Predict how long ``method`` takes on ``x`` with ``params`` (the explainer's keyword arguments;
    defaults are the explainer's), from pass times measured here.

    ``x`` is what the explainer takes: a (1, C, H, W) image, a (1, F, 2) record, token ids (W, T), or the
    forecaster's ``(x, m, pad, static)``. The first call for a model and input shape measures a few
    passes (about as long as one or two batches of the attribution); later calls are instant.

    Raises:
        InputError: no estimate for this method and modality.
    """
    from medai_core.explain.base import explainer_for, model_lock, thread_copy

    fn, _ = explainer_for(method, spec_modality)
    plan = _PLANS.get((spec_modality, method))
    if plan is None:
        raise InputError(f"No time estimate for {method} on {spec_modality} models.")
    p = {**_defaults(fn), **dict(params or {})}
    m = thread_copy(model)  # hooks and timed passes on this thread's copy, never the shared model
    with model_lock(m):
        return plan(m, x, p, memory_mb)


def _defaults(fn: Any) -> dict[str, Any]:
    import inspect

    return {k: v.default for k, v in inspect.signature(fn).parameters.items()
            if v.default is not inspect.Parameter.empty and v.kind is inspect.Parameter.KEYWORD_ONLY}


def finish(module: nn.Module, args: Args, plan: Plan, plans: list[Plan] | None, batch: int, what: str) -> Estimate:
    """The ``Estimate`` of ``plan`` (and of the worst case over ``plans``, for methods that refine) on
    ``module`` called with ``args``: pass times measured here; ``what`` describes the batches."""
    seconds = _plan_seconds(module, args, plan)
    worst = sum(_plan_seconds(module, args, q) for q in plans) if plans else seconds
    main = max(plan, key=lambda c: (c[0] * c[1], c[2]))
    t_main = pass_seconds(module, args, main[1], main[2])
    passes = sum(c[0] for c in plan)
    kind = "forward + backward" if main[2] else "forward"
    return Estimate(seconds, worst, passes, t_main, batch,
                    f"{passes} passes: {what}; one batch {t_main:.2f} s ({kind}), measured on this machine")


# Caps on rows per batch, shared by the explainers and the estimate so both use the same batches.
IMAGE_CAP = MAX_BATCH
IMAGE_IG_CAP = MAX_BATCH
SERIES_CAP = MAX_BATCH
