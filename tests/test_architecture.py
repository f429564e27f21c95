"""The layout holds: a pure core (no streamlit), layers that import only downwards, no import circles,
workspaces that do not import each other, small files, and pages that talk to a few entry points.
See README, "Architecture"; the contracts are in ``.importlinter``."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "medai_core"
MAX_LINES = 500
# what a page may import from the core: errors, the model registry, and its workspace(s); the Audit page reads
# the audit trail, which is its whole job (pages/audit.py; the workspace pages write to it through ui.audit)
PAGE_ENTRY_POINTS = ("medai_core.errors", "medai_core.models", "medai_core.workspaces", "medai_core.audit")


def _imports(path: Path) -> list[str]:
    """Every module a file imports (absolute names), at any depth: module level, in functions, under
    TYPE_CHECKING."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the core uses absolute imports)"
            out += [f"{node.module}.{a.name}" for a in node.names] if node.module == "medai_core" else [node.module or ""]
    return out


def test_no_streamlit_import_in_core_source():
    for path in CORE.rglob("*.py"):
        assert not any(n.split(".")[0] == "streamlit" for n in _imports(path)), path


def test_importing_core_does_not_load_streamlit():
    code = ("import sys, medai_core, medai_core.workspaces.imaging, medai_core.explain, medai_core.__main__;"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_model_catalogue_and_home_imports_do_not_load_torch():
    """Listing models, reading cards and the home page's imports stay torch-free (cold start); building a
    model imports it on demand."""
    code = ("import sys, medai_core.models as m, ui; from medai_core.models.spec import card_headline;"
            "names = list(m.MODELS); [card_headline(n) for n in names]; before = 'torch' in sys.modules;"
            "m.create_model('icu_gru'); print(before, 'torch' in sys.modules, len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    before, after, n = out.stdout.split()
    assert (before, after) == ("False", "True") and int(n) >= 8  # every shipped model's card was read


def test_import_contracts_hold():
    """import-linter: layers (a package imports only those below it) and independent workspaces."""
    pytest.importorskip("importlinter")
    code = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the import circles are the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_strongly_connected_finds_a_planted_circle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_core_modules():
    """Module by module, counting every import (in functions and under TYPE_CHECKING too)."""
    modules = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imp in _imports(path):
            # "from medai_core.x import y" names a module y or a name in x: take the longest module that exists
            while imp and imp not in modules:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                targets.add(imp)
        edges[name] = targets
    assert _strongly_connected(edges) == []


def test_no_source_file_over_the_limit():
    files = [*CORE.rglob("*.py"), *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_pages_talk_to_a_few_core_entry_points():
    for page in (ROOT / "pages").glob("*.py"):
        core = sorted({n for n in _imports(page) if n.startswith("medai_core")})
        assert all(n.startswith(PAGE_ENTRY_POINTS) for n in core), (page.name, core)
        assert len(core) <= 4, (page.name, core)
