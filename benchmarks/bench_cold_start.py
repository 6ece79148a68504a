"""A fresh process's first answer: import, store ten turns, search once (the serverless case).

Run: ``.venv/bin/python benchmarks/bench_cold_start.py`` (needs the ``langgraph`` extra;
``--quick`` for a smoke run, ``--json PATH`` to save the figures). Every run is a new Python
process, started in turn with the others' so load on the machine falls on each side alike:

- *ours*: ``MemoryPrimitive()`` with no setup: ``add`` of ten turns, then ``search`` of a
  question (keyword, in-process);
- *ours via LangGraph*: the same through ``MemoryPrimitiveStore``'s ``aput`` and ``asearch``;
- *LangGraph InMemoryStore*: its ``aput`` and ``asearch`` (it ignores ``query`` without an
  embeddings index, so it answers with the newest items: a lower bound of a search's cost).

Reported: the import (milliseconds from before the first import of the library to after it),
and from there to the first answer; medians and the slowest decile of ``--runs`` processes each,
the peer's median over ours as the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from _timing import bench_main, table

TURNS = [
    "I moved to Lisbon last spring for the new job",
    "my sister Ana is visiting in October",
    "the dentist said to avoid sticky snacks for a while",
    "we adopted a grey cat called Miso",
    "I am training for a half marathon in March",
    "my manager asked me to lead the billing migration",
    "the garage fixed the brakes on the old Volvo",
    "Ana is allergic to peanuts, so no satay at dinner",
    "I switched to decaf after three in the afternoon",
    "the billing migration moves invoices to the new ledger",
]
QUESTION = "when is my sister coming to visit and what can she not eat?"

_SIDES = {
    "ours": """
from tta_dev_primitives import MemoryPrimitive
t1 = time.perf_counter()
async def main():
    memory = MemoryPrimitive()
    for i, text in enumerate(TURNS):
        await memory.add(f"u1:t{i}", {"content": text})
    return await memory.search(QUESTION, limit=3)
""",
    "ours via LangGraph": """
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore
t1 = time.perf_counter()
async def main():
    store = MemoryPrimitiveStore(MemoryPrimitive())
    for i, text in enumerate(TURNS):
        await store.aput(("users", "u1"), f"t{i}", {"content": text})
    return await store.asearch(("users", "u1"), query=QUESTION, limit=3)
""",
    "LangGraph InMemoryStore": """
from langgraph.store.memory import InMemoryStore
t1 = time.perf_counter()
async def main():
    store = InMemoryStore()
    for i, text in enumerate(TURNS):
        await store.aput(("users", "u1"), f"t{i}", {"content": text})
    return await store.asearch(("users", "u1"), query=QUESTION, limit=3)
""",
}
PEER = "LangGraph InMemoryStore"


def _program(side: str) -> str:
    """One fresh process's job; it prints its two figures as JSON."""
    return (
        "import asyncio, json, time\n"
        f"TURNS, QUESTION = {TURNS!r}, {QUESTION!r}\n"
        "t0 = time.perf_counter()\n" + _SIDES[side] + "hits = asyncio.run(main())\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import_ms': (t1 - t0) * 1e3, 'answer_ms': (t2 - t1) * 1e3,"
        " 'hits': len(hits)}))\n"
    )


def _once(side: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _program(side)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{side}: the fresh process failed:\n{done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = 2 if args.quick else args.runs
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in _SIDES}
    for side in _SIDES:  # a warm-up each: the .pyc files are written, the disk cache is full
        _once(side)
    for _ in range(runs):
        for side in _SIDES:
            samples[side].append(_once(side))
    out: dict[str, Any] = {"runs": runs, "sides": {}}
    for side, rows in samples.items():
        row: dict[str, float] = {"hits": rows[0]["hits"]}
        for name in ("import_ms", "answer_ms"):
            values = sorted(r[name] for r in rows)
            row[f"{name}_p50"] = statistics.median(values)
            row[f"{name}_p90"] = values[min(len(values) - 1, int(len(values) * 0.9))]
        totals = sorted(r["import_ms"] + r["answer_ms"] for r in rows)
        row["total_ms_p50"] = statistics.median(totals)
        out["sides"][side] = row
    return out


def report(f: dict[str, Any]) -> None:
    peer = f["sides"][PEER]
    rows = []
    for side, r in f["sides"].items():
        rows.append([
            side,
            f"{r['import_ms_p50']:,.0f} / {r['import_ms_p90']:,.0f}",
            f"{r['answer_ms_p50']:,.1f} / {r['answer_ms_p90']:,.1f}",
            f"{r['total_ms_p50']:,.0f}",
            f"{peer['total_ms_p50'] / r['total_ms_p50']:.2f}x",
            f"{r['hits']:.0f}",
        ])  # fmt: skip
    print(f"A fresh process's first answer, {f['runs']} processes a side (ms, p50 / p90)\n")
    print(table(["side", "import", "ten adds + a search", "total p50",
                 f"{PEER} / side", "hits"], rows))  # fmt: skip
    print("\ncold start done")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=15, help="fresh processes a side")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, _arguments)
