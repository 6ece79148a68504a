"""MemoryPrimitiveStore against LangGraph's own InMemoryStore, through LangGraph's store API.

Run: ``.venv/bin/python benchmarks/bench_langgraph.py`` (needs the ``bench`` or ``langgraph`` extra;
``--quick`` for a smoke run, ``--json PATH`` to save the figures). Both stores hold the same items
(100 users' namespaces, a 12-word text and a ``kind`` each) and answer the same calls in one run:

- *put*: ``aput`` of a new item, into a namespace of its own so the other calls see ``n`` items.
- *get*: ``aget`` of one item.
- *newest 10*: ``asearch(namespace, limit=10)`` in one user's namespace.
- *filter*: ``asearch(namespace, filter={"kind": ...}, limit=10)``.
- *word*: items of all users mentioning a rare word. Ours: ``asearch(("users",), query=word)``.
  LangGraph's ``InMemoryStore`` ignores ``query`` without an embeddings index, so its side is what
  a user would write instead: list every item and keep those whose text has the word.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.store.memory import InMemoryStore

from _timing import bench_main, per_call_us, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

SEED = 20261124
USERS = 100
KINDS = ["note", "fact", "preference", "event", "task"]


def make_items(n: int, rng: random.Random) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    vocabulary = [f"w{i}" for i in range(2_000)]
    return [
        (
            ("users", f"u{i % USERS}"),
            f"item{i}",
            {"text": " ".join(rng.choices(vocabulary, k=12)), "kind": rng.choice(KINDS)},
        )
        for i in range(n)
    ]


async def measure(n: int, calls: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    items = make_items(n, rng)
    rounds = 5  # per_call_us's default: every put case call runs this many times
    ours = MemoryPrimitiveStore(MemoryPrimitive(max_size=n + rounds * calls + 10))
    theirs = InMemoryStore()
    for store in (ours, theirs):
        for namespace, key, value in items:
            await store.aput(namespace, key, value)
    word = items[n // 2][2]["text"].split()[0]
    ns, puts = ("users", "u7"), ("bench", "puts")

    async def scan_for_word() -> list[Any]:
        everything = await theirs.asearch(("users",), limit=n)
        return [i for i in everything if word in i.value["text"].split()]

    counter = iter(range(10**9))
    cases: dict[str, tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = {
        "put": (
            lambda: ours.aput(puts, f"new{next(counter)}", {"text": "a b c", "kind": "note"}),
            lambda: theirs.aput(puts, f"new{next(counter)}", {"text": "a b c", "kind": "note"}),
        ),
        "get": (lambda: ours.aget(ns, "item7"), lambda: theirs.aget(ns, "item7")),
        "newest 10": (lambda: ours.asearch(ns, limit=10), lambda: theirs.asearch(ns, limit=10)),
        "filter": (
            lambda: ours.asearch(ns, filter={"kind": "fact"}, limit=10),
            lambda: theirs.asearch(ns, filter={"kind": "fact"}, limit=10),
        ),
        "word": (lambda: ours.asearch(("users",), query=word, limit=10), scan_for_word),
    }
    found = len(await ours.asearch(("users",), query=word, limit=10)), len(await scan_for_word())
    rows = {}
    for name, (mine, peer) in cases.items():
        k = calls if name != "word" else max(5, calls // 20)
        rows[name] = {
            "ours_us": await per_call_us(mine, k, rounds),
            "langgraph_us": await per_call_us(peer, k, rounds),
        }
    return {"items": n, "word_hits": found, "cases": rows}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [1_000] if args.quick else [1_000, 10_000]
    calls = 200 if args.quick else 2_000
    return {"runs": [await measure(n, calls) for n in sizes]}


def report(figures: dict[str, Any]) -> None:
    for run_ in figures["runs"]:
        print(f"\n{run_['items']:,} items, microseconds per call (peer/ours > 1: ours is faster):")
        rows = [
            [name, c["ours_us"], c["langgraph_us"], f"{c['langgraph_us'] / c['ours_us']:.2f}x"]
            for name, c in run_["cases"].items()
        ]
        print(table(["call", "MemoryPrimitiveStore", "InMemoryStore", "peer/ours"], rows))
        print(f"word query hits (ours top 10, scan all): {run_['word_hits']}")
    print("\nlanggraph store comparison done")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
