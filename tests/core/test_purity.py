"""The core never imports streamlit (thin pages over a pure core)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "medai_core"


def test_no_streamlit_import_in_core_source():
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "streamlit" for n in names), path


def test_importing_core_does_not_load_streamlit():
    code = ("import sys, medai_core, medai_core.imaging, medai_core.explain, medai_core.__main__;"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent, check=True)
    assert out.stdout.strip() == "False"


def test_model_catalogue_and_home_imports_do_not_load_torch():
    """Listing models, reading cards and the home page's imports stay torch-free (cold start); building a
    model imports it on demand."""
    code = ("import sys, medai_core.models as m, ui; from medai_core.models.spec import card_headline;"
            "names = list(m.MODELS); [card_headline(n) for n in names]; before = 'torch' in sys.modules;"
            "m.create_model('icu_gru'); print(before, 'torch' in sys.modules, len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent, check=True)
    assert out.stdout.split() == ["False", "True", "5"]
