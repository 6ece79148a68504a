"""Small timing helpers shared by the benchmarks: medians of rounds, percentiles, tables."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any


async def per_call_us(call: Callable[[], Awaitable[object]], n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean microseconds per call of ``n`` sequential calls."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await call()
        results.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(results)


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) of the samples."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def process_ms(code: str, runs: int) -> float:
    """Median wall milliseconds of ``python -c code`` as a fresh process."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table; floats get three significant decimals."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def bench_main(
    doc: str,
    run: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
    report: Callable[[dict[str, Any]], None],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """The command line every benchmark shares: ``--quick``, ``--json PATH``, then report."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    report(figures)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2))
