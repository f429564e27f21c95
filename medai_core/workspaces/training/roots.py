"""Which server folders the Train page may read: only those under ``$MEDAI_TRAIN_DATA_DIRS`` (path-separated).
Unset: none (upload a ZIP instead), so a browser user cannot read arbitrary folders of the server. The CLI runs
as its user and takes any folder."""
from __future__ import annotations

import os
from pathlib import Path

from medai_core.errors import InputError

ROOTS_ENV = "MEDAI_TRAIN_DATA_DIRS"


def data_roots() -> list[Path]:
    """The folders (resolved) under which the Train page may read training sets."""
    return [Path(e).expanduser().resolve() for e in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if e.strip()]


def allowed_folder(path: str) -> Path:
    """``path`` resolved, if it is a folder under one of the roots. Raises ``InputError`` otherwise."""
    roots = data_roots()
    if not roots:
        raise InputError(f"Reading folders on the server is off; an administrator can allow folders with {ROOTS_ENV}. "
                         "Upload a ZIP instead.")
    p = Path(path.strip()).expanduser().resolve()
    if not any(p == r or r in p.parents for r in roots):
        raise InputError(f"{path} is not under a folder this server allows ({', '.join(map(str, roots))}).")
    if not p.is_dir():
        raise InputError(f"{path} is not a folder on this server.")
    return p
