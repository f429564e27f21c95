"""MedAI core: pure library (never imports streamlit)."""
from __future__ import annotations
