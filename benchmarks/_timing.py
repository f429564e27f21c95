"""Shared timing helper for the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[float, float]:
    """Median and inter-quartile range in milliseconds of ``fn()`` over ``repeats`` runs after warm-up."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def print_table(title: str, rows: list[tuple[str, Callable[[], object]]], repeats: int) -> None:
    """Print a markdown table of median and IQR per row (the format the README quotes)."""
    print(title)
    print("| work | median ms | IQR ms |")
    print("|---|---|---|")
    for name, fn in rows:
        med, iqr = median_ms(fn, repeats)
        print(f"| {name} | {med:.1f} | {iqr:.1f} |", flush=True)
