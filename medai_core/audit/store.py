"""The audit trail's storage: one append-only table through SQLAlchemy, SQLite or PostgreSQL.

The store offers appending and reading only. The database refuses changes as well: triggers abort any
UPDATE or DELETE on the table (and TRUNCATE on PostgreSQL), so a bug elsewhere in the app cannot rewrite the
trail. (A database administrator can still drop the triggers; that is outside the app.)
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from medai_core.audit.clean import (
    check_action,
    check_digest,
    check_name,
    check_user,
    clean_fields,
    to_json,
)

URL_ENV, PATH_ENV = "MEDAI_AUDIT_URL", "MEDAI_AUDIT_PATH"
TABLE = "medai_audit_events"
COLUMNS = ("id", "time_utc", "user", "workspace", "action", "model", "weights_sha256", "input_sha256", "params",
           "summary")
FILTERS = ("user", "workspace", "action", "model")

_metadata = sa.MetaData()
_events = sa.Table(
    TABLE, _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time_utc", sa.DateTime(timezone=False), nullable=False, index=True),  # naive, always UTC
    sa.Column("user", sa.String(200), nullable=False, index=True),
    sa.Column("workspace", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("model", sa.String(100)),
    sa.Column("weights_sha256", sa.String(64)),
    sa.Column("input_sha256", sa.String(64)),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)
_REFUSE = "the MedAI audit trail is append-only"
sa.event.listen(_events, "after_create", sa.DDL(
    f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"
).execute_if(dialect="sqlite"))
sa.event.listen(_events, "after_create", sa.DDL(
    f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"
).execute_if(dialect="sqlite"))
sa.event.listen(_events, "after_create", sa.DDL(
    f"CREATE OR REPLACE FUNCTION {TABLE}_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_REFUSE}'; END $$"
).execute_if(dialect="postgresql"))
sa.event.listen(_events, "after_create", sa.DDL(
    f"CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE} "
    f"FOR EACH ROW EXECUTE FUNCTION {TABLE}_refuse()"
).execute_if(dialect="postgresql"))
sa.event.listen(_events, "after_create", sa.DDL(
    f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_refuse()"
).execute_if(dialect="postgresql"))


def digest_bytes(data: bytes) -> str:
    """The sha256 of ``data`` in lowercase hex (64 characters): what the trail keeps of an input."""
    return hashlib.sha256(data).hexdigest()


def default_sqlite_path() -> Path:
    """``MEDAI_AUDIT_PATH``, else ``~/.medai/audit.sqlite`` (outside the repository, per user)."""
    env = os.environ.get(PATH_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".medai" / "audit.sqlite"


def default_url() -> str:
    """Where the app's trail lives: ``MEDAI_AUDIT_URL`` (e.g. ``postgresql://user@host/db``) when set, else
    SQLite at :func:`default_sqlite_path`."""
    url = os.environ.get(URL_ENV, "").strip()
    return url or f"sqlite:///{default_sqlite_path()}"


def _engine_url(url: str) -> sa.URL:
    """``postgresql://`` and ``postgres://`` go through psycopg 3 (the driver the project installs)."""
    u = sa.make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"audit store: unsupported database {u.get_backend_name()!r} (SQLite or PostgreSQL)")
    return u


@dataclass(frozen=True)
class AuditRecord:
    """One row of the trail. ``params`` and ``summary`` are the cleaned JSON objects."""

    id: int
    time_utc: dt.datetime
    user: str
    workspace: str
    action: str
    model: str | None
    weights_sha256: str | None
    input_sha256: str | None
    params: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """Flat values for a table or a CSV: the time in ISO 8601 with ``Z``, JSON text for the objects."""
        return {"id": self.id, "time_utc": self.time_utc.isoformat(timespec="seconds") + "Z", "user": self.user,
                "workspace": self.workspace, "action": self.action, "model": self.model or "",
                "weights_sha256": self.weights_sha256 or "", "input_sha256": self.input_sha256 or "",
                "params": to_json(self.params), "summary": to_json(self.summary)}


def _utc_naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


class AuditStore:
    """An append-only audit table in one database. Thread-safe (one SQLAlchemy engine with its pool).

    Args:
        url: a SQLAlchemy URL: ``sqlite:///PATH`` or ``postgresql://...`` (psycopg 3).
    """

    def __init__(self, url: str) -> None:
        u = _engine_url(url)
        if u.get_backend_name() == "sqlite":
            if u.database and u.database != ":memory:":  # user names are personal data: owner-only
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                Path(u.database).expanduser().touch(mode=0o600, exist_ok=True)
            self._engine = sa.create_engine(u, connect_args={"timeout": 15})
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        else:
            self._engine = sa.create_engine(u, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        self.url = u.render_as_string(hide_password=True)
        self.backend = u.get_backend_name()
        _metadata.create_all(self._engine, checkfirst=True)

    def append(self, action: str, *, workspace: str, user: str, model: str | None = None,
               weights_sha256: str | None = None, params: dict | None = None, input_sha256: str | None = None,
               summary: dict | None = None, time_utc: dt.datetime | None = None) -> None:
        """Append one record (see :func:`medai_core.audit.record_event`).

        Raises:
            ValueError: an unknown action, a malformed name or digest, or an empty user.
            sqlalchemy.exc.SQLAlchemyError: the database could not be written.
        """
        row = {"time_utc": _utc_naive(time_utc or dt.datetime.now(dt.UTC)),
               "user": check_user(user), "workspace": check_name(workspace, "workspace", required=True),
               "action": check_action(action), "model": check_name(model, "model"),
               "weights_sha256": check_digest(weights_sha256, "weights_sha256"),
               "input_sha256": check_digest(input_sha256, "input_sha256"),
               "params": to_json(clean_fields(params)), "summary": to_json(clean_fields(summary))}
        with self._engine.begin() as conn:
            conn.execute(sa.insert(_events).values(**row))

    def query(self, *, user: str | None = None, workspace: str | None = None, action: str | None = None,
              model: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
              limit: int | None = 10_000) -> list[AuditRecord]:
        """Records matching every given filter, newest first.

        Args:
            user, workspace, action, model: exact values (None: any).
            since, until: the time range, ``since <= time < until``; naive times are taken as UTC.
            limit: at most this many records (None: all).
        """
        q = sa.select(_events)
        for name, value in (("user", user), ("workspace", workspace), ("action", action), ("model", model)):
            if value is not None:
                q = q.where(_events.c[name] == value)
        if since is not None:
            q = q.where(_events.c.time_utc >= _utc_naive(since))
        if until is not None:
            q = q.where(_events.c.time_utc < _utc_naive(until))
        q = q.order_by(_events.c.time_utc.desc(), _events.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._engine.connect() as conn:
            return [AuditRecord(r.id, r.time_utc, r.user, r.workspace, r.action, r.model, r.weights_sha256,
                                r.input_sha256, json.loads(r.params), json.loads(r.summary))
                    for r in conn.execute(q)]

    def values(self, column: str) -> list[str]:
        """The distinct values of a filter column (``user``, ``workspace``, ``action``, ``model``), sorted."""
        if column not in FILTERS:
            raise ValueError(f"not a filter column: {column!r}; one of {', '.join(FILTERS)}")
        col = _events.c[column]
        with self._engine.connect() as conn:
            return sorted(v for (v,) in conn.execute(sa.select(col).where(col.is_not(None)).distinct()))

    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The first and last record's times (UTC, naive), or None when the trail is empty."""
        with self._engine.connect() as conn:
            first, last = conn.execute(sa.select(sa.func.min(_events.c.time_utc), sa.func.max(_events.c.time_utc))).one()
        return None if first is None else (first, last)

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_events)).scalar_one())

    def dispose(self) -> None:
        """Close the pooled connections (tests; the app keeps its store for the process's life)."""
        self._engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers (the Audit page) do not block writers, and several server processes may share the file
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def records_csv(records: list[AuditRecord]) -> bytes:
    """The records as CSV (UTF-8, a header row, the columns of :data:`COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(r.row())
    return buf.getvalue().encode()


_STORES: dict[str, AuditStore] = {}
_LOCK = threading.Lock()


def open_store(url: str | None = None) -> AuditStore:
    """The store at ``url`` (default: :func:`default_url`), one per URL per process (one engine, one pool)."""
    url = url or default_url()
    with _LOCK:
        store = _STORES.get(url)
        if store is None:
            store = _STORES[url] = AuditStore(url)
        return store


def record_event(action: str, *, workspace: str, user: str, model: str | None = None,
                 weights_sha256: str | None = None, params: dict | None = None, input_sha256: str | None = None,
                 summary: dict | None = None) -> None:
    """Append one record to the app's trail (:func:`default_url`, read from the environment at each call).

    Args:
        action: one of ``predict``, ``explain``, ``sanity_check``, ``export``, ``report``, ``batch``.
        workspace: ``imaging``, ``records``, ``notes``, ``vitals`` (or ``audit``, ``batch``).
        user: the signed-in user's e-mail, or an anonymous session id when sign-in is off.
        model, weights_sha256: the registered model and its weights' sha256 (``models.weights_digest``).
        params: the action's parameters (method, target, threshold...): short scalars only, others dropped.
        input_sha256: :func:`digest_bytes` of the input. Never the input, its file name or identifiers.
        summary: a short output summary (label, risk, alarm): short scalars only.
    Raises:
        ValueError: a malformed argument. sqlalchemy.exc.SQLAlchemyError: the store could not be written.
    """
    open_store().append(action, workspace=workspace, user=user, model=model, weights_sha256=weights_sha256,
                        params=params, input_sha256=input_sha256, summary=summary)
