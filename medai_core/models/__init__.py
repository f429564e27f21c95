"""Model families; importing this package registers them (without importing torch)."""
from __future__ import annotations

from medai_core.models import catalog  # noqa: F401  (registers the models; torch is imported on first build)
from medai_core.models.spec import (MODELS, ModelSpec, assets_dir, card_headline, create_model, get_spec, load_model,
                                    read_card, read_card_markdown, register_model, weights_digest)

__all__ = ["MODELS", "ModelSpec", "assets_dir", "card_headline", "create_model", "get_spec", "load_model", "read_card",
           "read_card_markdown", "register_model", "weights_digest"]
