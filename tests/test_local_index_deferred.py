"""The in-process store indexes a document only once its index is read (``LocalStore._pending``).

Redis's stand-by copy keeps the newest 1,000 memories and is searched only in an outage: a
loading process put every memory in its index and took it out again when it was evicted, half
of a write's CPU past the Redis call itself. Deferred, an evicted memory costs the index
nothing, and every read of the index (search, a scope's page, a touch) answers as if each
document had been indexed when it was put.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import numpy as np
import pytest

from tta_dev_primitives.search._analyzer import Analyzer
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.stores import _local
from tta_dev_primitives.stores._base import Document
from tta_dev_primitives.stores._inprocess import INDEX_SLICE, InProcessSearchBackend
from tta_dev_primitives.stores._local import LocalStore

WORDS = ["trip", "rome", "paris", "hike", "dog", "cat", "tea", "rain", "sun", "book"]


def document(analyzer: Analyzer, text: str, vector: Any = None) -> Document:
    return Document(analyzer.term_counts([text]), vector)


@pytest.fixture
def indexed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys every ``SearchIndex`` indexes from now on, in order."""
    keys: list[str] = []
    add = SearchIndex.add

    def counting(self: SearchIndex, key: str, *args: Any, **kwargs: Any) -> None:
        keys.append(key)
        add(self, key, *args, **kwargs)

    monkeypatch.setattr(SearchIndex, "add", counting)
    return keys


def test_a_memory_evicted_before_the_index_is_read_is_never_indexed(indexed: list[str]) -> None:
    analyzer = Analyzer()
    store = LocalStore(100, searchable=True)
    for i in range(1000):
        store.put(f"u{i % 7}:s1:{i}", f"p{i}", None, document(analyzer, f"trip number w{i}"))
    assert len(indexed) == 0
    found = store.search(analyzer.query("trip w950"), 5)
    assert found[0][:2] == ("u5:s1:950", "p950")
    assert sorted(indexed) == sorted(f"u{i % 7}:s1:{i}" for i in range(900, 1000))


def test_a_store_larger_than_pending_max_indexes_each_put_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its pending documents would be indexed before they were evicted anyway: nothing waits,
    so no read of its index has a backlog to index first."""
    monkeypatch.setattr(_local, "PENDING_MAX", 10)
    analyzer = Analyzer()
    store = LocalStore(11, searchable=True)
    for i in range(50):
        store.put(f"k{i}", i, None, document(analyzer, f"word w{i}"))
    assert not store._pending
    assert [key for key, _, _ in store.search(analyzer.query("w43"), 3)] == ["k43"]


def test_a_touch_of_a_pending_memory_indexes_nothing(indexed: list[str]) -> None:
    """A touch makes a memory the newest: a pending one just moves to the end of the queue."""
    analyzer = Analyzer()
    store = LocalStore(100, searchable=True)
    for key in ["a", "b", "c"]:
        store.put(key, key, 60.0, document(analyzer, "tea"))
    assert store.touch("a", 120.0)
    assert indexed == []
    assert [key for key, _, _ in store.search(analyzer.query("tea"), 5)] == ["a", "c", "b"]


async def test_the_first_search_of_a_full_copy_does_not_hold_the_loop() -> None:
    """The async backend indexes what waits a slice (``INDEX_SLICE``) a loop turn: other tasks
    run while the first search of an outage indexes the stand-by copy's 1,000 memories."""
    analyzer = Analyzer()
    backend = InProcessSearchBackend(1000, standby=True)
    for i in range(1000):
        await backend.put(f"u{i % 9}:s1:{i}", f"p{i}", document=document(analyzer, f"trip w{i}"))
    turns = 0
    searching = True

    async def tick() -> None:
        nonlocal turns
        while searching:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    start = turns
    found = await backend.search(analyzer.query("trip w999"), 3, None)
    searching = False
    await ticker
    assert found[0][:2] == ("u0:s1:999", "p999")
    assert turns - start >= 1000 // INDEX_SLICE - 1


def _run(store: LocalStore, analyzer: Analyzer, seed: int) -> list[Any]:
    """A random mix of puts (some with vectors), touches, deletes, reads and clears; what each
    read returned."""
    rng = random.Random(seed)
    seen: list[Any] = []
    for step in range(1500):
        key = f"u{rng.randrange(4)}:s{rng.randrange(3)}:{rng.randrange(60)}"
        roll = rng.random()
        if roll < 0.55:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 5)))
            vector = None
            if rng.random() < 0.05:
                vector = np.zeros(4, dtype=np.float32)
                vector[rng.randrange(4)] = 1.0
            doc = None if rng.random() < 0.05 else document(analyzer, text, vector)
            store.put(key, f"{text}@{step}", None, doc)
        elif roll < 0.65:
            seen.append(("touch", store.touch(key, None)))
        elif roll < 0.72:
            seen.append(("delete", store.delete(key)))
        elif roll < 0.87:
            scope = rng.choice([None, "u1", "u2:s1"])
            query = analyzer.query(rng.choice([*WORDS, "", "trip rain"]))
            seen.append(("search", store.search(query, rng.randrange(1, 12), scope)))
        elif roll < 0.97:
            scope = rng.choice(["u0", "u3:s2", None])
            seen.append(("page", store.scope_page(scope, None, rng.randrange(1, 30))))
        elif roll < 0.975:
            store.clear()
        seen.append(("size", store.size()))
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_reads_answer_as_if_each_document_were_indexed_when_put(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same operations on a store that defers its index and on one that indexes each put at
    once (``PENDING_MAX`` 0) read the same results, in the same order (recency breaks ties)."""
    analyzer = Analyzer()
    deferred = _run(LocalStore(40, searchable=True), analyzer, seed)
    monkeypatch.setattr(_local, "PENDING_MAX", 0)
    eager = _run(LocalStore(40, searchable=True), analyzer, seed)
    assert deferred == eager


def test_a_refused_vector_still_raises_from_put() -> None:
    """A vector is checked as it is put (not when the index is next read)."""
    analyzer = Analyzer()
    store = LocalStore(10, searchable=True)
    store.put("a", 1, None, document(analyzer, "tea", np.array([1.0, 0.0], dtype=np.float32)))
    store.put("b", 2, None, document(analyzer, "tea"))
    with pytest.raises(Exception, match="vector"):
        store.put("c", 3, None, document(analyzer, "tea", np.array([1.0, 0, 0], np.float32)))
    assert [key for key, _, _ in store.search(analyzer.query("tea"), 5)][:2] == ["b", "a"]


def test_a_memory_put_again_is_the_newest_among_equal_matches() -> None:
    """Ties go to the newest put: a key put again before the index is read ranks as its last
    put, not its first."""
    analyzer = Analyzer()
    store = LocalStore(10, searchable=True)
    for key in ["a", "b", "c", "a"]:
        store.put(key, key, None, document(analyzer, "tea"))
    assert [key for key, _, _ in store.search(analyzer.query("tea"), 5)] == ["a", "c", "b"]
