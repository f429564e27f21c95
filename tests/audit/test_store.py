"""The audit store, on SQLite and on a real PostgreSQL (tests/support/postgres.py): append, filter, CSV,
append-only (no API to change a record, and the database refuses), fields cleaned, inputs kept as digests."""
from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from medai_core import audit
from medai_core.audit import (
    AuditStore,
    digest_bytes,
    open_store,
    record_event,
    records_csv,
)
from tests.support.postgres import postgres_url  # noqa: F401  (fixture)

UTC = dt.UTC


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    base = request.getfixturevalue("postgres_url")
    # one fresh schema-less database per test would be slow; a fresh table is not possible (one table name), so
    # each test works in its own PostgreSQL database
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def store(store_url):
    s = AuditStore(store_url)
    yield s
    s.dispose()


def _fill(s: AuditStore) -> None:
    t0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    rows = [("predict", "imaging", "alice@example.org", "busi_cnn", 0), ("explain", "imaging", "alice@example.org", "busi_cnn", 1),
            ("predict", "records", "bob@example.org", "support_ftt", 2), ("export", "vitals", "anon-1a2b", "icu_gru", 30)]
    for action, ws, user, model, minutes in rows:
        s.append(action, workspace=ws, user=user, model=model, weights_sha256="a" * 64,
                 input_sha256=digest_bytes(f"{ws}{minutes}".encode()), params={"method": "gradcam"},
                 summary={"label": "benign", "risk": 0.25, "alarm": False}, time_utc=t0 + dt.timedelta(minutes=minutes))


def test_append_and_read_back(store):
    store.append("predict", workspace="imaging", user="alice@example.org", model="busi_cnn", weights_sha256="unknown",
                 input_sha256=digest_bytes(b"scan"), params={"frame": 0, "routing": "automatic"},
                 summary={"label": "malignant", "probability": 0.8125, "ood": False})
    (r,) = store.query()
    assert (r.action, r.workspace, r.user, r.model, r.weights_sha256) == ("predict", "imaging", "alice@example.org",
                                                                          "busi_cnn", "unknown")
    assert r.input_sha256 == digest_bytes(b"scan") and len(r.input_sha256) == 64
    assert r.params == {"frame": 0, "routing": "automatic"}
    assert r.summary == {"label": "malignant", "probability": 0.8125, "ood": False}
    assert abs((dt.datetime.now(UTC).replace(tzinfo=None) - r.time_utc).total_seconds()) < 60  # stored in UTC
    assert store.count() == 1


def test_filters_and_time_range(store):
    _fill(store)
    assert len(store.query()) == 4
    assert [r.action for r in store.query(user="alice@example.org")] == ["explain", "predict"]  # newest first
    assert [r.workspace for r in store.query(action="predict")] == ["records", "imaging"]
    assert len(store.query(workspace="imaging", model="busi_cnn")) == 2
    assert store.query(model="nope") == []
    start = dt.datetime(2025, 3, 1, 12, 1, tzinfo=UTC)
    assert [r.action for r in store.query(since=start, until=start + dt.timedelta(minutes=10))] == ["predict", "explain"]
    assert len(store.query(since=dt.datetime(2025, 3, 1, 12, 30))) == 1  # naive = UTC
    assert len(store.query(limit=2)) == 2
    assert store.values("user") == ["alice@example.org", "anon-1a2b", "bob@example.org"]
    assert store.values("workspace") == ["imaging", "records", "vitals"]
    with pytest.raises(ValueError):
        store.values("params")


def test_csv_export(store):
    _fill(store)
    rows = list(csv.DictReader(io.StringIO(records_csv(store.query(workspace="imaging")).decode())))
    assert [r["action"] for r in rows] == ["explain", "predict"]
    assert list(rows[0]) == list(audit.COLUMNS)
    assert rows[0]["time_utc"] == "2025-03-01T12:01:00Z" and rows[0]["summary"] == '{"alarm":false,"label":"benign","risk":0.25}'
    assert records_csv([]).decode().strip() == ",".join(audit.COLUMNS)


def test_the_database_refuses_changes(store):
    """Append-only even past the API: UPDATE and DELETE (and TRUNCATE on PostgreSQL) abort."""
    _fill(store)
    engine = sa.create_engine(sa.make_url(store.url.replace("postgresql://", "postgresql+psycopg://")))
    statements = ['UPDATE medai_audit_events SET "user" = \'x\'', "DELETE FROM medai_audit_events"]
    if store.backend == "postgresql":
        statements.append("TRUNCATE medai_audit_events")
    for stmt in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(stmt))
    engine.dispose()
    assert store.count() == 4 and {r.user for r in store.query()} == {"alice@example.org", "bob@example.org", "anon-1a2b"}
    AuditStore(store.url).dispose()  # opening it again (tables and triggers exist) is fine
    assert store.count() == 4


def test_no_update_or_delete_in_the_api_or_the_source():
    words = ("update", "delete", "remove", "clear", "truncate", "drop", "purge", "edit", "replace", "set")
    public = [n for n in dir(AuditStore) if not n.startswith("_")] + list(audit.__all__)
    assert not [n for n in public if any(w in n.lower() for w in words)], public
    # no SQLAlchemy update()/delete() anywhere in the package (the triggers' DDL text names the statements)
    for path in Path(audit.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                assert name not in ("update", "delete", "truncate", "drop", "drop_all"), (path.name, name)


def test_fields_are_cleaned(store):
    import numpy as np

    note = "Patient Zebediah Leakcheck, 54, presents with chest pain radiating to the left arm since this morning."
    store.append("explain", workspace="notes", user="  carol@example.org \n", model="notes_tfm",
                 params={"target": "Cardiology", "text": note, "nested": {"a": 1}, "blob": b"\x00\x01",
                         "array": np.zeros(3), "n": np.int64(5), "bad key!": 1, "k" * 41: 1, "nan": float("nan"),
                         "long_list": list(range(17)), "ok_list": [1, "a", None]},
                 summary={"risk": np.float32(0.5), "obj": object()})
    (r,) = store.query()
    assert r.user == "carol@example.org"
    assert r.params == {"target": "Cardiology", "text": note[:64], "n": 5, "nan": None, "ok_list": [1, "a", None]}
    assert r.summary == {"risk": 0.5}


@pytest.mark.parametrize("kwargs", [
    {"action": "view"},                                  # not an audited action
    {"input_sha256": "scan.dcm"},                        # a file name where a digest goes
    {"input_sha256": "A" * 64},                          # not lowercase hex
    {"weights_sha256": "abc"},
    {"workspace": "Doe^Jane"},                           # a name with characters no workspace has
    {"model": "x" * 101},
    {"user": "  "},
])
def test_malformed_arguments_are_refused(store, kwargs):
    args = {"action": "predict", "workspace": "imaging", "user": "u@example.org"} | kwargs
    with pytest.raises(ValueError):
        store.append(args.pop("action"), **args)
    assert store.count() == 0


def test_record_event_writes_to_the_store_named_by_the_environment(monkeypatch, tmp_path, store_url):
    monkeypatch.delenv("MEDAI_AUDIT_URL", raising=False)
    monkeypatch.setenv("MEDAI_AUDIT_PATH", str(tmp_path / "deep" / "trail.sqlite"))
    assert audit.default_url() == f"sqlite:///{tmp_path / 'deep' / 'trail.sqlite'}"
    record_event("batch", workspace="batch", user="cli:tester", model="busi_cnn", params={"inputs": 3})
    assert (tmp_path / "deep" / "trail.sqlite").exists()
    assert [r.action for r in open_store().query()] == ["batch"]
    monkeypatch.setenv("MEDAI_AUDIT_URL", store_url)  # the URL wins over the path
    record_event("predict", workspace="imaging", user="u@example.org", input_sha256=digest_bytes(b"1"))
    assert open_store() is open_store(store_url)  # one store (engine) per URL per process
    assert [r.action for r in open_store(store_url).query()] == ["predict"]


def test_urls(monkeypatch, tmp_path):
    from medai_core.audit.store import _engine_url

    assert _engine_url("postgresql://u:pw@db:5432/audit").drivername == "postgresql+psycopg"
    assert _engine_url("postgres://u@db/audit").drivername == "postgresql+psycopg"
    assert _engine_url("sqlite:////tmp/x.sqlite").drivername == "sqlite"
    with pytest.raises(ValueError, match="unsupported"):
        _engine_url("mysql://u@db/audit")
    monkeypatch.delenv("MEDAI_AUDIT_URL", raising=False)
    monkeypatch.delenv("MEDAI_AUDIT_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert audit.default_sqlite_path() == tmp_path / ".medai" / "audit.sqlite"
