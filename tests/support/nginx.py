"""Start Debian's nginx in front of MedAI replicas on 127.0.0.1 (``deploy/render_nginx.py``'s config), and stop it.

For the replica test (``tests/e2e/test_replicas.py``) and the load tests' ``--replicas N``. nginx runs in the
foreground (``daemon off``) with its pid file, temporary folders and logs in a folder the caller gives, so
nothing outside it is written; when this process is root the workers run as root too (``user root``), since
the folder (e.g. pytest's ``tmp_path``) is not readable by Debian's default ``nobody``.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.render_nginx import render
from tests.support.server import HOST, ServerError, free_port

NGINX = os.environ.get("MEDAI_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
COOKIE = "medai_replica"


@dataclass(frozen=True)
class Nginx:
    """A running nginx: where it listens, its process, and its folder (config, logs)."""

    url: str
    port: int
    proc: subprocess.Popen
    folder: Path

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"


def nginx_available() -> bool:
    """True when the nginx binary exists (Debian: ``apt-get install nginx``; ``.ci/run`` does)."""
    return Path(NGINX).exists()


def start_nginx(replicas: Sequence[str], folder: Path, port: int | None = None) -> Nginx:
    """Render the config for ``replicas`` (``host:port``) into ``folder`` and start nginx on 127.0.0.1; do not wait."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = folder / "nginx.conf"
    conf.write_text(render(f"{HOST}:{port}", replicas, folder, user="root" if os.geteuid() == 0 else None,
                           workers="1"))
    # -e: the error log from the first line on (before the config is read, nginx would use /var/log/nginx)
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Nginx(url=f"http://{HOST}:{port}", port=port, proc=proc, folder=folder)


def wait_nginx(ngx: Nginx, timeout_s: float = 20.0) -> None:
    """Until ``/_stcore/health`` answers 200 through nginx (nginx listens and a replica is healthy).

    Raises:
        ServerError: nginx exited (the message carries its stderr and error log) or no answer in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ngx.proc.poll() is not None:
            err = ngx.proc.stderr.read() if ngx.proc.stderr else ""
            log = ngx.error_log.read_text() if ngx.error_log.exists() else ""
            raise ServerError(f"nginx exited with code {ngx.proc.returncode}:\n{err}\n{log}")
        try:
            with urllib.request.urlopen(f"{ngx.url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ServerError(f"no answer from {ngx.url}/_stcore/health through nginx in {timeout_s:g} s")


def stop_nginx(ngx: Nginx) -> None:
    """Fast shutdown (SIGTERM to the master), 10 s, then kill."""
    ngx.proc.terminate()
    try:
        ngx.proc.wait(10)
    except subprocess.TimeoutExpired:
        ngx.proc.kill()
        ngx.proc.wait()


@contextlib.contextmanager
def running_nginx(replicas: Sequence[str], folder: Path, port: int | None = None,
                  timeout_s: float = 20.0) -> Iterator[Nginx]:
    """Start nginx (see :func:`start_nginx`), wait until a replica answers through it, and always stop it."""
    ngx = start_nginx(replicas, folder, port)
    try:
        wait_nginx(ngx, timeout_s)
        yield ngx
    finally:
        stop_nginx(ngx)


def upstreams_for(access_log: Path, cookie: str, path: str = "") -> set[str]:
    """The replicas (``host:port``) that answered requests of the browser whose cookie is ``cookie``.

    Counts the requests sent with that cookie and the first one, which set it; ``path`` keeps only requests
    whose path starts with it. A failed attempt before a failover is not counted (the last address is).
    """
    out = set()
    rx = re.compile(r'"[A-Z]+ (\S+) [^"]*" (\d+) .* upstream=(.*?) cookie=(\S*) served_by=(\S*)$')
    for line in access_log.read_text().splitlines():
        m = rx.search(line)
        if m and m.group(1).startswith(path) and cookie in (m.group(4), m.group(5)) and m.group(3) not in ("", "-"):
            out.add(m.group(3).split(",")[-1].strip())
    return out
