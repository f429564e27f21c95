"""A user model's module: loaded from TorchScript or a ``torch.export`` program (never unpickled), probed, and
wrapped so that the imaging pipeline, the explainers and the sanity check use it as they use shipped models.

What each format supports (see README, "Your own model"):
- ``torchscript``: predict, Integrated Gradients, SmoothGrad, occlusion, sanity check. No Grad-CAM:
  TorchScript modules refuse forward hooks.
- ``exported_program``: all of these and Grad-CAM. The program is unflattened (``torch.export.unflatten``) so
  its layers are real modules again; it must be exported with a dynamic batch dimension.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medai_core.models.spec import ModelSpec
from medai_core.models.user import ModelCheckError, ModelFileError
from medai_core.models.user_reference import read_reference


def read_module(fmt: str, path: Path) -> nn.Module:
    """The module in ``path``, read as ``fmt``; never ``torch.load`` of a pickled module."""
    try:
        if fmt == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        with warnings.catch_warnings():  # torch's own deprecation notice from its loader, not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            ep = torch.export.load(str(path))
            return torch.export.unflatten(ep)
    except Exception as exc:  # noqa: BLE001 - any read failure is a model error for the user
        how = "torch.jit.save" if fmt == "torchscript" else "torch.export.save"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"Model file {path} could not be read as {fmt} (save it with {how}; MedAI never "
                             f"unpickles model files): {first}") from None


class _Group(nn.Module):
    """One top-level layer of the user's network as a sanity-check layer group: the cascade re-initialises its
    parameters. A stand-in because TorchScript layers refuse the hooks the cascade puts on a group (its forward
    never runs, so the cascade randomises in registration order, output layer first)."""

    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_target", target)  # not registered: its parameters belong to the wrapper's net

    def modules(self) -> Iterator[nn.Module]:
        return self._target.modules()

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        return self._target.parameters(recurse)

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, nn.Parameter]]:
        return self._target.named_parameters(*args, **kwargs)


class UserImageModel(nn.Module):
    """The user's network behind the interface of the shipped image models.

    Takes (N, 1, H, W) grayscale in [0, 1] (the pipeline's input), repeats it to the declared channels and
    normalises with the declared mean/std. With the folder's ``reference.npz`` (``reference``, checked arrays)
    the OOD guard is ``backbones.reference_score`` on ``reference_features`` of the input, flagged above the file's
    threshold; without it ``ood_score`` is 0 and ``ood_threshold`` infinite, so nothing is flagged.
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, reference: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.reference = reference
        e = spec.extra
        self.channels = int(e["channels"])
        self.register_buffer("mean", torch.tensor(e["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(e["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.temperature = float(e["temperature"])
        self.decision_threshold = float(e["threshold"])
        self.ood_threshold = float(reference["threshold"]) if reference is not None else float("inf")
        self.pixel_mean = float(sum(e["mean"]) / len(e["mean"]))  # IG's "mean" baseline and occlusion's fill
        object.__setattr__(self, "_groups", {name: _Group(child) for name, child in _children(net)
                                             if next(child.parameters(), None) is not None})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.net((x - self.mean) / self.std)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, the OOD guard's features): ``reference_features(x)`` (N, 1280) with reference statistics,
        else the logits (unused: the score is 0)."""
        logits = self(x)
        if self.reference is None:
            return logits, logits
        from medai_core.models.backbones import reference_features

        return logits, reference_features(x)

    def ood_score(self, feats: torch.Tensor) -> torch.Tensor:
        """(N,) distance to the reference statistics (0 without them)."""
        if self.reference is None:
            return torch.zeros(feats.shape[0])
        from medai_core.models.backbones import reference_score

        return torch.from_numpy(reference_score(self.reference, feats)).float()

    def named_children(self) -> Iterator[tuple[str, nn.Module]]:
        # the sanity check's layer groups: the user's top-level layers (not one group for the whole net)
        return iter(self._groups.items())

    def children(self) -> Iterator[nn.Module]:
        # TorchScript layers refuse hooks: the memory estimate (explain.cost) then hooks the wrapper as one leaf
        return iter(()) if self.spec.extra["format"] == "torchscript" else super().children()

    def modules(self) -> Iterator[nn.Module]:
        return iter((self,)) if self.spec.extra["format"] == "torchscript" else super().modules()

    def __getattr__(self, name: str) -> Any:
        groups = self.__dict__.get("_groups", {})
        if name in groups:  # get_submodule(group name), as the cascade asks
            return groups[name]
        return super().__getattr__(name)

    def train(self, mode: bool = True) -> UserImageModel:
        self.training = mode
        try:
            self.net.train(mode)
        except (RuntimeError, NotImplementedError):  # some exported programs refuse it; they stay as exported
            pass
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> UserImageModel:
        if recurse:
            self.net._apply(fn)
        return super()._apply(fn, recurse=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> UserImageModel:
        # read the file again and copy the state: an unflattened program does not deep-copy (symbolic shapes in
        # its graph) and a deep-copied ScriptModule's parameters are not leaves (their requires_grad is frozen)
        net = read_module(self.spec.extra["format"], Path(self.spec.weights))
        net.load_state_dict(self.net.state_dict())
        clone = UserImageModel(net, self.spec, self.reference)  # the arrays are read-only: shared
        clone.load_state_dict(self.state_dict())
        for p, q in zip(self.parameters(), clone.parameters()):
            q.requires_grad_(p.requires_grad)
        return clone.train(self.training)


def _children(net: nn.Module) -> list[tuple[str, nn.Module]]:
    return list(net.named_children())


def _layer_names(net: nn.Module) -> list[str]:
    return [n for n, _ in net.named_modules() if n]


def _find_layer(net: nn.Module, dotted: str) -> nn.Module | None:
    mod: Any = net
    for part in dotted.split("."):
        mod = getattr(mod, part, None)
        if not isinstance(mod, nn.Module):
            return None
    return mod


def load_checked(spec: ModelSpec) -> UserImageModel:
    """Read the module of ``spec``, probe it with zeros of the declared input (batch 2), check its Grad-CAM layer
    and its folder's ``reference.npz`` if there is one, and wrap it (eval mode).

    Raises:
        ModelFileError: unreadable model or reference file. ModelCheckError: wrong output shape, non-finite
            outputs, unknown layer, reference statistics of another extractor, shape or with bad values.
    """
    e, folder = spec.extra, spec.extra["folder"]
    net = read_module(e["format"], Path(spec.weights))
    try:
        net.eval()
    except (RuntimeError, NotImplementedError):
        pass
    h, w = spec.input_size
    shape = (2, int(e["channels"]), h, w)
    try:
        with torch.no_grad():
            out = net(torch.zeros(shape))
    except Exception as exc:  # noqa: BLE001 - the user's code failing on its declared input is a model error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelCheckError(f"Model folder {folder}: the model failed on a probe input of shape {shape} (zeros of "
                              f"the declared input, batch 2; an exported program needs a dynamic batch dimension): "
                              f"{first}") from None
    k = len(spec.labels)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelCheckError(f"Model folder {folder}: on a probe input of shape {shape} the model returned {got}; "
                              f"it must return one tensor of logits shaped (2, {k}).")
    if out.shape[1] != k:
        raise ModelCheckError(f"Model folder {folder}: the model returns {out.shape[1]} scores per image but labels "
                              f"lists {k} ({', '.join(spec.labels)}); they must match, in output order.")
    if not torch.isfinite(out).all():
        raise ModelCheckError(f"Model folder {folder}: the model returns non-finite values (NaN or infinity) on a "
                              f"probe input of zeros of shape {shape}.")
    layer = e.get("declared_gradcam_layer", "")
    if layer and _find_layer(net, layer) is None:
        names = _layer_names(net)
        raise ModelCheckError(f"Model folder {folder}: gradcam_layer {layer!r} is not a layer of the model; "
                              f"some that are: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}.")
    reference = read_reference(e["reference"]) if e.get("reference") else None
    return UserImageModel(net, spec, reference).eval()
