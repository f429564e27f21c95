"""Deployment safety: the production config, and the sign-in switch for shared deployments."""
from __future__ import annotations

import tomllib

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "medai", "client_secret": "s", "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


def test_production_config():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] == "none"  # no tracebacks in the browser
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["headless"] is True
    # a full gc.collect after every script run held the GIL for most of the server's time under load
    assert cfg["runner"]["postScriptGC"] is False


def _home(monkeypatch, require: str | None, secrets: dict | None = None, user: dict | None = None) -> AppTest:
    if require is None:
        monkeypatch.delenv("MEDAI_REQUIRE_LOGIN", raising=False)
    else:
        monkeypatch.setenv("MEDAI_REQUIRE_LOGIN", require)
    at = AppTest.from_file(APP, default_timeout=120)
    if secrets:
        at.secrets["auth"] = secrets
    if user is not None:
        at.user.clear()
        at.user.update(user)
    at.run()
    assert not at.exception
    return at


def _workspaces_shown(at: AppTest) -> bool:
    return any(h.value == "Workspaces" for h in at.header)


def test_open_without_the_switch(monkeypatch):
    assert _workspaces_shown(_home(monkeypatch, None))


def test_switch_without_a_provider_shows_nothing_but_the_reason(monkeypatch):
    at = _home(monkeypatch, "1")
    assert not _workspaces_shown(at)
    assert any("no identity provider is configured" in e.value for e in at.error)


def test_switch_asks_for_sign_in(monkeypatch):
    at = _home(monkeypatch, "true", AUTH, {"is_logged_in": False})
    assert not _workspaces_shown(at)
    assert [b.label for b in at.button] == ["Sign in"]


def test_signed_in_user_sees_the_app(monkeypatch):
    at = _home(monkeypatch, "1", AUTH, {"is_logged_in": True, "name": "Dr Test", "email": "t@example.org"})
    assert _workspaces_shown(at)
    assert any("Signed in as Dr Test" in c.value for c in at.sidebar.caption)
