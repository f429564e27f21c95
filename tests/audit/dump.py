"""Read back everything an audit store holds, as text, for the leakage checks."""
from __future__ import annotations

import sqlalchemy as sa


def dump_tables(url: str) -> dict[str, list[str]]:
    """Every row of every table in the database at ``url``, each row as one line of text, by table name."""
    engine = sa.create_engine(sa.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)))
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {name: ["|".join("" if v is None else str(v) for v in row) for row in conn.execute(sa.select(table))]
                    for name, table in meta.tables.items()}
    finally:
        engine.dispose()


def leaked(tables: dict[str, list[str]], markers: list[bytes]) -> list[str]:
    """The markers found in any row (case-insensitive)."""
    text = "\n".join(line for rows in tables.values() for line in rows).lower()
    return [m.decode() for m in markers if m.decode().lower() in text]
