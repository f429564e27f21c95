"""Model families; importing this package registers them (without importing torch)."""
from __future__ import annotations

from . import catalog  # noqa: F401  (registers the models; torch is imported on first build)
from .spec import MODELS, ModelSpec, assets_dir, create_model, get_spec, load_model, read_card, register_model

__all__ = ["MODELS", "ModelSpec", "assets_dir", "create_model", "get_spec", "load_model", "read_card", "register_model"]
