"""The audit trail: who asked what, of which model, on which input (by digest), and what came out.

Append-only: this package offers appending and reading, no way to change or remove a record, and the
database's triggers refuse UPDATE and DELETE. It imports nothing from the rest of the core (callers pass the
model's weights digest in), so the app, the command line and batch jobs all write through it.

    from medai_core.audit import digest_bytes, record_event
    record_event("predict", workspace="imaging", user="alice@example.org", model="busi_cnn",
                 weights_sha256=weights_digest("busi_cnn"), input_sha256=digest_bytes(data),
                 params={"frame": 0}, summary={"label": "benign", "probability": 0.91})

Where: ``MEDAI_AUDIT_URL`` (``postgresql://...`` through psycopg 3, or any ``sqlite:///`` URL), else SQLite at
``MEDAI_AUDIT_PATH``, else ``~/.medai/audit.sqlite``.
"""
from __future__ import annotations

from medai_core.audit.clean import ACTIONS, clean_fields
from medai_core.audit.store import (
                                    COLUMNS,
                                    FILTERS,
                                    PATH_ENV,
                                    URL_ENV,
                                    AuditRecord,
                                    AuditStore,
                                    default_sqlite_path,
                                    default_url,
                                    digest_bytes,
                                    open_store,
                                    record_event,
                                    records_csv,
)

__all__ = ["ACTIONS", "COLUMNS", "FILTERS", "PATH_ENV", "URL_ENV", "AuditRecord", "AuditStore", "clean_fields",
           "default_sqlite_path", "default_url", "digest_bytes", "open_store", "record_event", "records_csv"]
