"""ui/memo.py: per-session figure caches. Keys hold every argument (so a changed argument always rebuilds), the
store lives in one session's state (never shared), and on the Imaging page every view parameter still changes
exactly the figures it should."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_png, open_page, speckle_image
from ui.memo import Keyed, fingerprint


@dataclasses.dataclass(frozen=True)
class _Pred:
    label: str
    probs: dict
    arr: np.ndarray


def _variants():
    base = dict(a=1, b=0.5, s="x", arr=np.zeros((4, 4), np.float32), d={"k": 1.0}, t=(1, 2), none=None,
                dc=_Pred("a", {"a": 0.2}, np.arange(3)))
    changed = dict(a=2, b=0.5000001, s="y", arr=np.eye(4, dtype=np.float32), d={"k": 2.0}, t=(1, 3), none=0,
                   dc=_Pred("a", {"a": 0.3}, np.arange(3)))
    return base, changed


def test_fingerprint_changes_with_every_argument():
    base, changed = _variants()
    ref = fingerprint(base)
    assert fingerprint(dict(base)) == ref  # equal content, equal key
    for name in base:
        assert fingerprint({**base, name: changed[name]}) != ref, name
    # arrays: dtype and shape count, not only the bytes
    z = np.zeros(4, np.float32)
    assert len({fingerprint(z), fingerprint(z.astype(np.float64)), fingerprint(z.reshape(2, 2))}) == 3
    assert fingerprint((1,), {}) != fingerprint((), {"x": 1})  # positional and keyword arguments differ
    assert fingerprint(1) != fingerprint(1.0) != fingerprint(True)


def test_fingerprint_keyed_and_unknown_types():
    big = np.random.default_rng(0).random((64, 64))
    assert fingerprint(Keyed(big, ("scan", "abc", 0))) == fingerprint(Keyed(big * 0, ("scan", "abc", 0)))
    assert fingerprint(Keyed(big, ("scan", "abc", 0))) != fingerprint(Keyed(big, ("scan", "abc", 1)))
    with pytest.raises(TypeError, match="Keyed"):
        fingerprint(object())  # a new kind of argument must say how it is keyed


def _memo_script() -> None:
    import streamlit as st

    import ui

    calls = st.session_state.setdefault("calls", [])

    def build(a, b=0):  # noqa: ANN001, ANN202
        calls.append((a, b))
        return {"a": a, "b": b}

    n = st.session_state.setdefault("n", 0)
    st.session_state["figs"] = [ui.figure(build, n), ui.figure(build, n, b=1), ui.figure(build, n)]


def test_figure_cache_is_per_session_keyed_and_bounded():
    from ui.memo import K_FIGURES, KEEP_FIGURES

    a = AppTest.from_function(_memo_script)
    a.run()
    assert a.session_state["calls"] == [(0, 0), (0, 1)]  # the third call was served from the cache
    f = a.session_state["figs"]
    assert f[0] is f[2] and f[0] is not f[1]
    a.run()
    assert len(a.session_state["calls"]) == 2  # a rerun builds nothing
    b = AppTest.from_function(_memo_script)
    b.run()
    assert b.session_state["calls"] == [(0, 0), (0, 1)]  # another session never sees a's figures
    assert b.session_state["figs"][0] is not a.session_state["figs"][0]
    for n in range(1, KEEP_FIGURES + 5):
        a.session_state["n"] = n
        a.run()
    assert len(a.session_state[K_FIGURES]) == KEEP_FIGURES


def _views_script() -> None:
    import numpy as np
    import streamlit as st

    import ui

    v = st.session_state.setdefault("view", {"opacity": 0.5, "cmap": "jet", "window": 0})
    rng = np.random.default_rng(v["window"])
    display = ui.Keyed(rng.random((120, 90)), ("display", "scan", v["window"]))
    attr = np.outer(np.hanning(14), np.hanning(14))
    st.session_state["figs"] = [ui.scan_view(display, "Scan", 1.0, 360),
                                ui.map_view(display, attr, False, "absolute", v["opacity"], v["cmap"], "map", 1.0, 360)]


def test_map_views_encode_each_picture_once(monkeypatch):
    """A new opacity re-encodes nothing; a new colour map only the map's layer; a new window only the scan (once,
    for both figures that show it)."""
    from medai_core.workspaces import imaging as W

    encoded: list[str] = []
    for name in ("picture", "heat_picture"):
        real = getattr(W, name)
        monkeypatch.setattr(W, name, lambda *a, _f=real, _n=name, **k: encoded.append(_n) or _f(*a, **k))
    at = AppTest.from_function(_views_script)
    at.run()
    assert sorted(encoded) == ["heat_picture", "picture"]
    first = [f.to_json() for f in at.session_state["figs"]]

    def change(**kw: object) -> list:
        encoded.clear()
        at.session_state["view"] = {**at.session_state["view"], **kw}
        at.run()
        return [f.to_json() for f in at.session_state["figs"]]

    now = change(opacity=0.8)
    assert encoded == [] and now[0] == first[0] and now[1] != first[1]
    assert change(cmap="inferno")[1] != now[1] and encoded == ["heat_picture"]
    assert change(window=1)[0] != first[0] and encoded == ["picture"]
    assert change(opacity=0.5, cmap="jet", window=0) == first and encoded == []  # all still cached
    assert not at.exception


def _specs(at: AppTest) -> dict[str, str]:
    return {c.key: c.proto.spec for c in at.get("plotly_chart")}


def _explained(at: AppTest, timeout: float = 60) -> dict[str, str]:
    deadline = time.time() + timeout
    while "imaging.overlay" not in _specs(at):
        assert time.time() < deadline, "no explanation"
        time.sleep(0.3)
        at.run()
    return _specs(at)


def test_imaging_figures_follow_every_view_parameter():
    at = open_page("imaging", 120)
    at.sidebar.selectbox(key="imaging.model").set_value("busi_cnn")
    at.sidebar.file_uploader[0].upload("scan.png", make_png(speckle_image(5)), "image/png")
    at.run()
    first = _explained(at)
    at.slider(key="imaging.opacity").set_value(0.8).run()
    s = _specs(at)
    assert s["imaging.overlay"] != first["imaging.overlay"]
    assert s["imaging.original"] == first["imaging.original"] and s["imaging.probs"] == first["imaging.probs"]
    at.selectbox(key="imaging.cmap").set_value([c for c in at.selectbox(key="imaging.cmap").options
                                                        if c != at.selectbox(key="imaging.cmap").value][0]).run()
    assert _specs(at)["imaging.overlay"] != s["imaging.overlay"]
    level = lambda: next(x for x in at.slider if x.label == "Level (centre)")  # noqa: E731
    centre = level().value
    level().set_value(centre + 20).run()
    w = _specs(at)
    assert w["imaging.original"] != first["imaging.original"] and w["imaging.overlay"] != s["imaging.overlay"]
    at.slider(key="imaging.zoom").set_value(2.0).run()
    assert _specs(at)["imaging.original"] != w["imaging.original"]
    # back to the first settings: the same figures as at first (what the cache serves equals a fresh build)
    at.slider(key="imaging.zoom").set_value(1.0).run()
    level().set_value(centre).run()
    at.selectbox(key="imaging.cmap").set_value(at.selectbox(key="imaging.cmap").options[0]).run()
    at.slider(key="imaging.opacity").set_value(0.5).run()
    assert _specs(at)["imaging.original"] == first["imaging.original"]
    assert _specs(at)["imaging.overlay"] == first["imaging.overlay"]
    assert not at.exception
