"""Batch scoring of archives on Ray Data (``python -m medai_core batch``)."""
