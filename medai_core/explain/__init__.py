"""Explainers (Captum wrappers) registered by name and modality, and overlays."""
from __future__ import annotations

from . import image  # noqa: F401  (registers the image explainers)
from .base import EXPLAINERS, Explanation, model_lock, register_explainer
from .overlay import COLORMAPS, normalise_map, overlay

__all__ = ["COLORMAPS", "EXPLAINERS", "Explanation", "model_lock", "normalise_map", "overlay", "register_explainer"]
