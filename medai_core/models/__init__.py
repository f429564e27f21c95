"""Model families; importing this package registers them."""
from __future__ import annotations

from . import busi_cnn, forecaster, notes_tfm, support_ftt  # noqa: F401  (registers the models)
from .spec import MODELS, ModelSpec, assets_dir, create_model, get_spec, load_model, read_card, register_model

__all__ = ["MODELS", "ModelSpec", "assets_dir", "create_model", "get_spec", "load_model", "read_card", "register_model"]
