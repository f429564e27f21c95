"""The audit trail in the app: the Audit page is for admins only (filters, CSV), and a workspace page records
each prediction once per input, not once per rerun."""
from __future__ import annotations

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest

from medai_core.audit import digest_bytes, open_store
from medai_core.workspaces.vitals.samples import synthetic_icu_case
from tests.conftest import ROOT, open_page

APP, PAGE = str(ROOT / "app.py"), str(ROOT / "pages" / "audit.py")
ADMIN = {"is_logged_in": True, "name": "Alice Admin", "email": "alice@example.org"}


@pytest.fixture
def trail(monkeypatch, tmp_path):
    """A fresh SQLite trail for this test, with two records in it."""
    monkeypatch.delenv("MEDAI_AUDIT_URL", raising=False)
    monkeypatch.setenv("MEDAI_AUDIT_PATH", str(tmp_path / "audit.sqlite"))
    store = open_store()
    store.append("predict", workspace="imaging", user="bob@example.org", model="busi_cnn", weights_sha256="unknown",
                 input_sha256=digest_bytes(b"scan"), summary={"label": "benign", "probability": 0.9})
    store.append("explain", workspace="records", user="carol@example.org", model="support_ftt",
                 input_sha256=digest_bytes(b"table"), params={"method": "shapley_sampling", "row": 0})
    return store


def _app(user: dict | None, admins: list[str] | None, script: str = APP) -> AppTest:
    at = AppTest.from_file(script, default_timeout=120)
    if admins is not None:
        at.secrets["medai"] = {"admins": admins}
    if user is not None:
        at.user.clear()
        at.user.update(user)
    at.run()
    assert not at.exception
    return at


def _nav_pages(at: AppTest) -> set[str]:
    try:
        at.switch_page("pages/audit.py")
    except ValueError:  # not registered in the navigation for this user
        return set()
    return {"audit"}


@pytest.mark.parametrize("user, admins", [
    (None, None),                                                         # sign-in off: anonymous
    (None, ["alice@example.org"]),
    ({"is_logged_in": True, "email": "bob@example.org"}, ["alice@example.org"]),  # signed in, not an admin
    (ADMIN, None),                                                        # no admins listed
])
def test_non_admins_do_not_get_the_trail(trail, user, admins):
    assert _nav_pages(_app(user, admins)) == set()  # not in the menu
    at = _app(user, admins, PAGE)  # and a direct visit is refused
    assert any("Admins only" in e.value for e in at.error)
    assert not at.dataframe and not at.get("download_button") and not at.selectbox


def test_admin_sees_filters_rows_and_a_csv(trail):
    at = _app(ADMIN, ["Alice@Example.org"])  # e-mails compare case-insensitively
    at.switch_page("pages/audit.py")
    at.run()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["Audit trail"]
    assert len(at.dataframe[0].value) == 2
    assert set(at.dataframe[0].value["user"]) == {"bob@example.org", "carol@example.org"}
    at.selectbox(key="audit.workspace").set_value("records").run()
    frame = at.dataframe[0].value
    assert list(frame["action"]) == ["explain"] and list(frame["model"]) == ["support_ftt"]
    button = at.get("download_button")[0]
    assert button.label == "Export CSV"
    rows = list(csv.DictReader(io.StringIO(records_of(trail, workspace="records"))))
    assert [r["user"] for r in rows] == ["carol@example.org"]
    at.selectbox(key="audit.action").set_value("predict").run()  # nothing is both
    assert len(at.dataframe[0].value) == 0 and any("0 record(s)" in m.value for m in at.markdown)


def records_of(store, **filters) -> str:
    from medai_core.audit import records_csv

    return records_csv(store.query(**filters)).decode()


def test_a_prediction_is_recorded_once_per_input_not_per_rerun(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDAI_AUDIT_URL", raising=False)
    monkeypatch.setenv("MEDAI_AUDIT_PATH", str(tmp_path / "audit.sqlite"))
    at = open_page("vitals", 180)
    data = synthetic_icu_case("deteriorating").to_csv(index=False).encode()
    at.file_uploader(key="vitals.upload").upload("stay-of-patient.csv", data, "text/csv")
    at.run()
    assert not at.exception and not at.error
    at.slider(key="vitals.show").set_value(12).run()  # a view-only change: the page reruns
    at.run()
    assert not at.exception
    store = open_store()
    predicts = store.query(action="predict")
    assert len(predicts) == 1
    (p,) = predicts
    assert (p.workspace, p.model, list(p.params)) == ("vitals", at.selectbox(key="vitals.model").value, ["horizon"])
    assert p.user.startswith("anon-") and len(p.input_sha256) == 64
    assert p.weights_sha256 and set(p.summary) == {"alarm", "threshold_warnings"}
    assert len(store.query(action="explain")) == 1
    at.slider(key="vitals.horizon").set_value(3).run()  # new parameters: a new prediction
    assert len(store.query(action="predict")) == 2
    everything = records_of(store)
    assert "stay-of-patient" not in everything  # never the file name


def test_a_broken_store_warns_and_the_page_still_works(monkeypatch):
    monkeypatch.setenv("MEDAI_AUDIT_URL", "mysql://nobody@127.0.0.1/none")  # unsupported: every record fails
    at = open_page("vitals", 180)
    at.radio(key="vitals.source").set_value("Synthetic demo case").run()
    assert not at.exception and not at.error
    assert any("Audit trail unavailable" in w.value for w in at.warning)
    assert any(c.key == "vitals.chart" for c in at.get("plotly_chart"))
