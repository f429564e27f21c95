"""Render ``deploy/nginx.conf.template`` for N MedAI replicas (standard library only).

    python deploy/render_nginx.py --listen 8080 --replica 127.0.0.1:8501 --replica 127.0.0.1:8502 \\
        --prefix /var/lib/medai-nginx > medai-nginx.conf
    nginx -c "$PWD/medai-nginx.conf"          # add -g 'daemon off;' to keep it in the foreground

The template's comments explain the sticky-session scheme. ``--prefix`` holds the pid file and nginx's
temporary folders (uploads are buffered there), ``--log-dir`` the error and access logs (default: the
prefix). The upload limit is read from ``.streamlit/config.toml`` (``server.maxUploadSize``, MB) unless
``--max-upload-mb`` is given. The tests (``tests/support/nginx.py``) render and start it the same way.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
STREAMLIT_CONFIG = ROOT / ".streamlit" / "config.toml"
DEFAULT_MAX_UPLOAD_MB = 200  # Streamlit's default server.maxUploadSize
COOKIE = "medai_replica"
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9A-Fa-f:]+\]:\d{1,5}$")
_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")


def max_upload_mb(config: Path = STREAMLIT_CONFIG) -> int:
    """Streamlit's upload limit in MB: ``server.maxUploadSize`` from ``config``, else Streamlit's default."""
    if not config.exists():
        return DEFAULT_MAX_UPLOAD_MB
    return int(tomllib.loads(config.read_text()).get("server", {}).get("maxUploadSize", DEFAULT_MAX_UPLOAD_MB))


def replica_name(index: int) -> str:
    """The cookie value and upstream suffix of the ``index``-th replica (``r0``, ``r1``, ...)."""
    return f"r{index}"


def _upstreams(replicas: Sequence[str], max_fails: int, fail_timeout_s: int) -> str:
    def server(addr: str, backup: bool = False) -> str:
        return f"        server {addr} max_fails={max_fails} fail_timeout={fail_timeout_s}s{' backup' if backup else ''};"

    blocks = ["    # new browsers (no cookie yet): round robin over all replicas",
              "    upstream medai_new {", *(server(a) for a in replicas), "    }"]
    for i, addr in enumerate(replicas):
        blocks += [f"    # browsers whose cookie says {replica_name(i)}: that replica, the others if it is down",
                   f"    upstream medai_{replica_name(i)} {{", server(addr),
                   *(server(a, backup=True) for a in replicas if a != addr), "    }"]
    return "\n".join(blocks)


def render(listen: str, replicas: Sequence[str], prefix: Path, log_dir: Path | None = None, *,
           user: str | None = None, workers: str = "auto", max_upload: int | None = None,
           max_fails: int = 1, fail_timeout_s: int = 10, template: Path = TEMPLATE) -> str:
    """The nginx configuration for ``replicas`` behind one listener.

    Args:
        listen: nginx's ``listen`` value, e.g. ``"8080"``, ``"127.0.0.1:8080"``.
        replicas: the Streamlit servers as ``host:port``, at least one, no duplicates. Their order fixes
            the cookie values (``r0`` is the first): append new replicas at the end so that open
            sessions keep their replica.
        prefix: an existing folder for the pid file and nginx's temporary folders (absolute).
        log_dir: where ``error.log`` and ``access.log`` go; ``prefix`` when None.
        user: the ``user`` directive (the workers' account when nginx starts as root); omitted when None.
        workers: ``worker_processes`` (``"auto"``: one per core).
        max_upload: the upload limit in MB; Streamlit's ``server.maxUploadSize`` when None.
        max_fails: failed attempts after which a replica is skipped for ``fail_timeout_s`` seconds.
        fail_timeout_s: see ``max_fails``.
        template: the template file.

    Returns:
        The configuration text, every placeholder filled.

    Raises:
        ValueError: no replica, a duplicate, an address that is not ``host:port``, or a relative path.
    """
    if not replicas:
        raise ValueError("at least one --replica host:port is needed")
    if len(set(replicas)) != len(replicas):
        raise ValueError(f"duplicate replica in {list(replicas)}")
    for addr in replicas:
        if not _ADDRESS.match(addr):
            raise ValueError(f"replica {addr!r} is not host:port")
    log_dir = log_dir or prefix
    for path in (prefix, log_dir):
        if not Path(path).is_absolute():
            raise ValueError(f"{path} is not an absolute path (nginx would read it relative to its own prefix)")
    mb = max_upload if max_upload is not None else max_upload_mb()
    values = {
        "USER": f"user {user};" if user else "# user: the account nginx's workers run as (when started as root)",
        "WORKERS": workers,
        "PREFIX": str(prefix),
        "LOG_DIR": str(log_dir),
        "LISTEN": listen,
        "MAX_BODY": f"{mb + 1}m",
        "SERVED_BY": "\n".join(f'        "~(^|\\s){re.escape(a)}$" {replica_name(i)};' for i, a in enumerate(replicas)),
        "POOL_BY_COOKIE": "\n".join(f"        {replica_name(i)} medai_{replica_name(i)};" for i in range(len(replicas))),
        "UPSTREAMS": _upstreams(replicas, max_fails, fail_timeout_s),
    }
    text = _PLACEHOLDER.sub(lambda m: values[m.group(0).strip("@")], template.read_text())
    return text


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Render the nginx configuration for N MedAI replicas.")
    ap.add_argument("--listen", required=True, help="nginx's listen value: PORT or ADDRESS:PORT")
    ap.add_argument("--replica", action="append", required=True, metavar="HOST:PORT",
                    help="a Streamlit replica; repeat for each (append new ones at the end)")
    ap.add_argument("--prefix", type=Path, required=True, help="folder for the pid file and temporary files")
    ap.add_argument("--log-dir", type=Path, help="folder for error.log and access.log (default: --prefix)")
    ap.add_argument("--user", help="the workers' account when nginx starts as root (e.g. www-data)")
    ap.add_argument("--workers", default="auto", help="worker_processes (default: auto)")
    ap.add_argument("--max-upload-mb", type=int, help="upload limit (default: server.maxUploadSize)")
    args = ap.parse_args(argv)
    try:
        sys.stdout.write(render(args.listen, args.replica, args.prefix.resolve(),
                                args.log_dir.resolve() if args.log_dir else None, user=args.user,
                                workers=args.workers, max_upload=args.max_upload_mb))
    except ValueError as exc:
        ap.error(str(exc))


if __name__ == "__main__":
    main()
