"""Can I trust these word attributions? The generic checks (``medai_core.trust``) run on the notes pipeline."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medai_core.explain.base import ProgressFn
from medai_core.trust.checks import TrustReport, split_progress
from medai_core.trust.faithfulness import N_RANDOM, N_STEPS, FaithfulnessCurves, faithfulness_curves
from medai_core.trust.randomisation import CascadeResult, cascading_randomisation

if TYPE_CHECKING:
    from medai_core.models.spec import ModelSpec
    from medai_core.workspaces.notes.pipeline import EncodedNote
    from medai_core.workspaces.notes.text import Vocab


def sanity_check_note(model: nn.Module, spec: ModelSpec, vocab: Vocab, text: str | EncodedNote, target: str,
                      method: str = "integrated_gradients", *, seed: int = 0, progress: ProgressFn | None = None,
                      **params: Any) -> CascadeResult:
    """Cascading randomisation of ``notes.explain_note(...)``; maps (words,)."""
    from medai_core.workspaces.notes.pipeline import encode_note, explain_note

    enc = text if not isinstance(text, str) else encode_note(text, vocab, spec)
    return cascading_randomisation(
        model, lambda m: explain_note(m, spec, vocab, enc, target, method, copy_model=False, **params).values,
        seed=seed, progress=progress)


def faithfulness_note(model: nn.Module, spec: ModelSpec, vocab: Vocab, text: str | EncodedNote, target: str,
                      attributions: np.ndarray, *, n_steps: int = N_STEPS, n_random: int = N_RANDOM, seed: int = 0,
                      order: str = "positive", progress: ProgressFn | None = None) -> FaithfulnessCurves:
    """Deletion/insertion of words: a removed word's id becomes padding, which the model masks out (the
    other words keep their positions). Score: calibrated probability of ``target`` (windows averaged,
    as ``notes.classify``)."""
    from medai_core.errors import InputError
    from medai_core.workspaces.notes.pipeline import encode_note

    if target not in spec.labels:
        raise InputError(f"Unknown specialty {target!r}; choose one of {', '.join(spec.labels)}.")
    enc = text if not isinstance(text, str) else encode_note(text, vocab, spec)
    k = spec.labels.index(target)
    n_win, width = enc.ids.shape
    units = torch.full_like(enc.ids, -1)
    for wi, (a, b) in enumerate(enc.bounds):
        units[wi, 1:b - a + 1] = torch.arange(a, b)
    temp = float(model.temperature)

    def score(b: torch.Tensor) -> torch.Tensor:
        logits = model(b.reshape(-1, width)).double().reshape(len(b), n_win, -1).mean(1)
        return torch.softmax(logits / temp, -1)[:, k]

    return faithfulness_curves(score, enc.ids, torch.zeros_like(enc.ids), units, np.asarray(attributions),
                               n_steps=n_steps, n_random=n_random, seed=seed, order=order,
                               batch_size=max(1, 64 // n_win), score=f"probability of {target}", unit="words",
                               reference_name="word removed", progress=progress)


def trust_note(model: nn.Module, spec: ModelSpec, vocab: Vocab, text: str | EncodedNote, target: str,
               values: np.ndarray, progress: ProgressFn | None = None) -> TrustReport:
    """Sanity check and faithfulness curves of a note's word attributions ``values`` for ``target``."""
    p1, p2 = split_progress(progress)
    cascade = sanity_check_note(model, spec, vocab, text, target, progress=p1)
    curves = faithfulness_note(model, spec, vocab, text, target, values, progress=p2)
    return TrustReport("integrated_gradients", target, cascade, curves)
