"""A real, throw-away PostgreSQL cluster for the audit-trail tests: Debian's ``postgresql`` package, not a mock.

``running_postgres()`` runs ``initdb`` in a fresh temporary folder, starts the server on 127.0.0.1 on a free
port (its unix socket in that folder too, so nothing outside it is touched), creates a database and yields
its URL; on exit it stops the server and removes the folder. PostgreSQL refuses to run as root, so as root
every command runs as the ``postgres`` OS user (``runuser``) in a folder owned by it.

The pytest fixture ``postgres_url`` (session-scoped) skips when the binaries are missing, except where the
run must be complete (``CI`` or ``MEDAI_REQUIRE_BROWSER=1``, as in ``.ci/run``, which installs them): there it
fails.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import HOST, free_port

DB, ROLE = "medai_audit", "medai"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (``/usr/lib/postgresql/<v>/bin``, or ``initdb`` on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
                   if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def must_run() -> bool:
    """CI and the full local check require the PostgreSQL tests to run, not skip."""
    return bool(os.environ.get("CI")) or os.environ.get("MEDAI_REQUIRE_BROWSER") == "1"


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], folder: Path) -> None:
    out = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, cwd=folder, timeout=120,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({out.returncode}): {out.stderr[-2000:] or out.stdout[-2000:]}")


@contextlib.contextmanager
def running_postgres(bindir: Path | None = None) -> Iterator[str]:
    """Start a private PostgreSQL cluster on 127.0.0.1; yields ``postgresql://medai@127.0.0.1:PORT/medai_audit``.

    Raises:
        FileNotFoundError: no PostgreSQL binaries. RuntimeError: a step failed (its stderr in the message).
    """
    bindir = bindir or postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (no initdb); apt-get install postgresql")
    # as root, /tmp: the postgres user must be able to reach the folder (a root-only TMPDIR would not do)
    folder = Path(tempfile.mkdtemp(prefix="medai-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    data, sock, log = folder / "data", folder / "sock", folder / "server.log"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", ROLE, "-A", "trust", "-E", "UTF8", "--no-sync",
              "--no-instructions"], folder)
        opts = (f"-h {HOST} -p {port} -k {sock} -F -c shared_buffers=16MB -c max_connections=40 "
                "-c dynamic_shared_memory_type=mmap")
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"], folder)
        started = True
        _run([str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", ROLE, DB], folder)
        yield f"postgresql://{ROLE}@{HOST}:{port}/{DB}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for the test session (see the module docstring for when it skips)."""
    if postgres_bin() is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if must_run():
            pytest.fail(message + "; required here (CI / MEDAI_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    with running_postgres() as url:
        yield url
