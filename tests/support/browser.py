"""Helpers for the real-browser tests (Playwright pages)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def upload(page: Any, label: str, files: str | Path | list[dict]) -> None:
    """Set ``files`` on the Streamlit file uploader labelled ``label``, once that uploader is drawn.

    After a click that switches a page's section, a bare ``input[type=file]`` can still be the old section's
    uploader, which the rerun then removes together with the file: under CI load a sepsis upload was lost that
    way, and the test waited 60 s for a result that could not come.

    Args:
        page: a Playwright page.
        label: text in the uploader's label (a part is enough).
        files: a path, or Playwright's file payloads (``[{"name", "mimeType", "buffer"}]``).
    """
    uploader = page.locator("[data-testid=stFileUploader]").filter(has_text=label)
    uploader.wait_for(timeout=60_000)
    uploader.locator("input[type=file]").set_input_files(files if isinstance(files, list) else str(files))
