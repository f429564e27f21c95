"""MedAI core: pure library (never imports streamlit)."""
from __future__ import annotations

# Printed in every report and de-identified export; raised when a release changes outputs.
__version__ = "0.6.0"
