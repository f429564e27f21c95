"""Explainers (Captum wrappers) registered by name and modality, and overlays."""
from __future__ import annotations

from medai_core.explain import image, sepsis, series, tabular, text  # noqa: F401  (register the explainers)
from medai_core.explain.base import EXPLAINERS, Explanation, explainer_for, model_lock, register_explainer
from medai_core.explain.overlay import COLORMAPS, normalise_map, overlay

__all__ = ["COLORMAPS", "EXPLAINERS", "Explanation", "explainer_for", "model_lock", "normalise_map", "overlay", "register_explainer"]
