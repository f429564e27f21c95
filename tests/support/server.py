"""Start a real ``streamlit run app.py`` on 127.0.0.1, wait until it is healthy, and stop it.

The one copy of this loop for the browser tests (``tests/e2e``) and the benchmarks (``benchmarks/``).
Servers bind 127.0.0.1 only.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server exited or did not answer its health check in time."""


@dataclass(frozen=True)
class Server:
    """A ``streamlit run app.py`` process and where it listens."""

    url: str
    port: int
    proc: subprocess.Popen


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(port: int | None = None, env: Mapping[str, str] | None = None, log: IO | int | None = None,
                 extra_args: Sequence[str] = ()) -> Server:
    """Launch ``streamlit run app.py`` from the repository root, headless, on 127.0.0.1; do not wait.

    Args:
        port: the port to listen on; a free one when None.
        env: variables set on top of this process's environment (e.g. ``PYTHONUNBUFFERED``).
        log: where the server's stdout and stderr go together: a file, ``subprocess.PIPE`` (read as
            text from ``proc.stdout``), or None to discard them.
        extra_args: more ``streamlit run`` options, after the address, port and headless ones.

    Returns:
        The running server; stop it with :func:`stop`.
    """
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", HOST,
         "--server.port", str(port), "--server.headless", "true", *extra_args],
        cwd=ROOT, env=dict(os.environ, **(env or {})), text=True,
        stdout=subprocess.DEVNULL if log is None else log,
        stderr=subprocess.DEVNULL if log is None else subprocess.STDOUT)
    return Server(url=f"http://{HOST}:{port}", port=port, proc=proc)


def wait_healthy(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll ``{url}/_stcore/health`` until it answers 200.

    Args:
        url: the server's base URL, without a trailing slash.
        timeout_s: how long to wait.
        proc: the server process, when this session started it: if it exits, fail at once.

    Raises:
        ServerError: ``proc`` exited (the message carries its output when it went to a pipe), or no
            answer within ``timeout_s``. The process is left as it is: stopping it is the caller's job.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise ServerError(f"streamlit exited with code {proc.returncode}" + (f":\n{output}" if output else ""))
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:  # refused until the server listens
            pass
        time.sleep(0.1)
    raise ServerError(f"no answer from {url}/_stcore/health in {timeout_s:g} s")


def stop(server: Server | subprocess.Popen) -> None:
    """Terminate the server, give it 10 s to exit, then kill it."""
    proc = server.proc if isinstance(server, Server) else server
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_server(port: int | None = None, env: Mapping[str, str] | None = None, log: IO | int | None = None,
                   extra_args: Sequence[str] = (), timeout_s: float = 60.0) -> Iterator[Server]:
    """Start a server (see :func:`start_server`), wait until it is healthy, and always stop it on leaving.

    Raises:
        ServerError: it did not become healthy within ``timeout_s``; it is stopped first, and the message
            carries its output when ``log`` is ``subprocess.PIPE``.
    """
    server = start_server(port, env, log, extra_args)
    try:
        try:
            wait_healthy(server.url, timeout_s, server.proc)
        except ServerError as exc:
            stop(server)
            output = server.proc.stdout.read() if server.proc.stdout else ""
            raise ServerError(f"{exc}\n{output}" if output else str(exc)) from None
        yield server
    finally:
        stop(server)


@contextlib.contextmanager
def running_servers(count: int, env: Mapping[str, str] | None = None, logs: Sequence[Path] = (),
                    extra_args: Sequence[str] = (), timeout_s: float = 90.0) -> Iterator[list[Server]]:
    """Start ``count`` servers (replicas) at once, wait until all are healthy, and always stop them on leaving.

    Args:
        count: how many.
        env: as for :func:`start_server`.
        logs: one log file path per server (stdout and stderr together); none: output discarded.
        extra_args: as for :func:`start_server`.
        timeout_s: for all of them together (they start in parallel).

    Raises:
        ServerError: one did not become healthy in time (the others are stopped too).
    """
    servers: list[Server] = []
    with contextlib.ExitStack() as stack:
        for k in range(count):
            log = stack.enter_context(open(logs[k], "w")) if logs else None  # closed by the stack
            servers.append(start_server(env=env, log=log, extra_args=extra_args))
        try:
            deadline = time.monotonic() + timeout_s
            for server in servers:
                wait_healthy(server.url, max(1.0, deadline - time.monotonic()), server.proc)
            yield servers
        finally:
            for server in servers:
                if server.proc.poll() is None:
                    stop(server)
