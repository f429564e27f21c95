"""Model families; importing this package registers them (without importing torch)."""
from __future__ import annotations

from medai_core.models import catalog  # noqa: F401  (registers the models; torch is imported on first build)
from medai_core.models.spec import (MODELS, ModelSpec, assets_dir, card_headline, create_model, get_spec, load_model,
                                    read_card, read_card_markdown, register_model, weights_digest)
from medai_core.models.user import register_user_models, user_model_problems

register_user_models()  # $MEDAI_MODEL_DIRS; broken folders are skipped, listed by user_model_problems()

__all__ = ["MODELS", "ModelSpec", "assets_dir", "card_headline", "create_model", "get_spec", "load_model", "read_card",
           "read_card_markdown", "register_model", "register_user_models", "user_model_problems", "weights_digest"]
