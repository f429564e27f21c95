"""Where a loaded server's time goes (issue 18): py-spy samples one real server while the protocol client
(``load_protocol.py``) drives N sessions, and every sample is put in one bucket:

- **model work**: torch, Captum and the core's own decode / route / score / explain (what ``targets.py`` times);
- **image rendering and encoding**: windowing, heatmap overlays, resizing, PNG and base64 for the browser;
- **figure building**: plotly figures (and the core's ``plots``) before they are serialised;
- **message serialisation**: figures to JSON, protobuf messages, the websocket writes;
- **script execution**: everything else the page script and Streamlit's script runner do (widgets, layout,
  session state, caches);
- **server**: the rest (Tornado's loop, uploads, the websocket reads).

Only samples where the server was busy count (py-spy leaves idle threads out). Run::

    python benchmarks/profile_page_runs.py [--sessions 10] [--rounds 2] [--warm 20] [--out profile.txt]

It prints the breakdown (share of busy samples) and the heaviest leaf functions; ``--out`` keeps py-spy's raw
collapsed stacks (for ``flamegraph.pl`` or speedscope). py-spy must be installed (``pip install py-spy``; it reads
the server's memory with ptrace, so it may need root or ``kernel.yama.ptrace_scope=0``). Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_protocol import one_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME = re.compile(r"(?P<func>[^;(]+) \((?P<file>[^:;]+)(?::\d+)?\)")
# (bucket, rule on one frame's "file func"); the first bucket any frame of a stack matches wins, in this order
RULES: list[tuple[str, re.Pattern]] = [
    ("message serialisation", re.compile(r"plotly/io/_json|json/encoder|SerializeToString|forward_msg|websocket"
                                         r"|protobuf|_populate_delta|marshall_|/elements/lib/js_number")),
    ("image rendering and encoding", re.compile(r"PIL/|base64|image_array_to_data_uri|_array_to_b64|/explain/overlay"
                                                r"|medai_core/io/scan\.py .*render|downsample_for_display|plots/encode"
                                                r"|/io/window")),
    ("figure building", re.compile(r"plotly/|medai_core/plots/")),
    ("model work", re.compile(r"torch/|captum/|medai_core/")),
    ("script execution", re.compile(r"streamlit/runtime/scriptrunner|exec_func_with_error_handling|/pages/|/ui/|ui\.py")),
]


def bucket(stack: str) -> str:
    frames = [f"{m['file']} {m['func']}" for m in FRAME.finditer(stack)]
    for name, rule in RULES:
        if any(rule.search(f) for f in frames):
            return name
    return "server"


PAGES = {"imaging.py": "Imaging", "records.py": "Records", "vitals.py": "Vital signs"}
BUCKETS = ("model work", "script execution", "figure building", "image rendering and encoding", "message serialisation",
           "server")


def workspace(stack: str) -> str:
    """The page whose run a sample belongs to (its script frame), or "" (the server's own loop, other pages)."""
    for file, name in PAGES.items():
        if f"({file}:" in stack or f"/pages/{file}:" in stack:
            return name
    return ""


def breakdown(raw: str) -> tuple[collections.Counter, collections.Counter, int]:
    """Samples per (workspace, bucket) and per leaf function from py-spy's raw (collapsed) output."""
    per, leaves, total = collections.Counter(), collections.Counter(), 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        per[(workspace(stack), bucket(stack))] += int(n)
        frames = FRAME.findall(stack)
        if frames:
            func, file = frames[-1]
            leaves[f"{func.strip()} ({Path(file).name})"] += int(n)
    return per, leaves, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--out", help="keep py-spy's raw collapsed stacks here")
    ap.add_argument("--raw", help="no run: print the breakdown of stacks recorded before (py-spy's raw format)")
    ap.add_argument("--warm", type=float, default=0.0, metavar="SECONDS",
                    help="open the home page this long before the load and the profile start (as load_protocol.py)")
    args = ap.parse_args()
    if args.raw:
        print_breakdown(Path(args.raw).read_text(), f"# server profile from {args.raw}")
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    from tests.support.server import start_server, stop, wait_healthy

    log = tempfile.TemporaryFile(mode="w+")
    raw_path = Path(args.out) if args.out else Path(tempfile.mkstemp(suffix=".txt")[1])
    server = start_server(log=log)
    try:
        wait_healthy(server.url, timeout_s=60.0, proc=server.proc)
        from load_test import warm_inputs, warm_up

        warm_inputs()
        if args.warm > 0:
            warm_up([server.url], args.warm)
        rec = subprocess.Popen([spy, "record", "--pid", str(server.proc.pid), "--rate", str(args.rate), "--format", "raw",
                                "--nonblocking", "-o", str(raw_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        out: dict = {"scan": [], "records": [], "forecast": [], "errors": []}

        async def run() -> None:
            await asyncio.gather(*(one_session(server.url, k, args.rounds, out, args.timeout) for k in range(args.sessions)))

        t0 = time.perf_counter()
        asyncio.run(run())
        wall = time.perf_counter() - t0
        rec.send_signal(signal.SIGINT)
        err = rec.communicate(timeout=60)[1].decode(errors="replace")
    finally:
        stop(server)
    raw = raw_path.read_text() if raw_path.exists() else ""
    if not raw:
        sys.exit(f"py-spy recorded nothing: {err[-500:]}")
    n = sum(len(out[k]) for k in ("scan", "records", "forecast"))
    print_breakdown(raw, f"# server profile: {args.sessions} sessions x {args.rounds} rounds, {n} results, "
                         f"{len(out['errors'])} errors, wall {wall:.0f} s, at {args.rate} samples/s"
                         + (f", warm ({args.warm:.0f} s after the home page)" if args.warm > 0 else ", cold"))
    for e in out["errors"][:5]:
        print("error:", e)


def print_breakdown(raw: str, title: str) -> None:
    """Per workspace: the share of its busy samples in each bucket, and its share of all busy samples."""
    per, leaves, total = breakdown(raw)
    print(f"{title}; {total} busy samples")
    cols = [*PAGES.values(), ""]
    print("| where the busy server time went | " + " | ".join(c or "outside page runs" for c in cols) + " | all |")
    print("|---|" + "---|" * (len(cols) + 1))
    sums = {c: sum(per[(c, b)] for b in BUCKETS) for c in cols}
    for b in BUCKETS:
        print(f"| {b} | " + " | ".join(f"{per[(c, b)] / max(sums[c], 1):.0%}" for c in cols)
              + f" | {sum(per[(c, b)] for c in cols) / max(total, 1):.0%} |")
    print("| share of all busy samples | " + " | ".join(f"{sums[c] / max(total, 1):.0%}" for c in cols) + " | 100% |")
    print("\nheaviest leaf functions:")
    for f, k in leaves.most_common(12):
        print(f"  {k / total:6.1%}  {f}")


if __name__ == "__main__":
    main()
