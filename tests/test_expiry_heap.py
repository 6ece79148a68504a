"""The in-process TTL heap holds about one entry per live key, however many writes came before."""

from __future__ import annotations

from tta_dev_primitives import InMemoryStore
from tta_dev_primitives.stores._local import LocalStore


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_add_delete_cycles_with_a_ttl_leave_the_heap_at_the_live_keys() -> None:
    """200k add/delete cycles with ttl=3600 leave a heap of O(live keys), not 200k entries."""
    store = LocalStore(1000, searchable=False)
    for key in range(100):
        store.put(f"live{key}", b"v", 3600)
    for cycle in range(200_000):
        store.put(f"k{cycle % 7}", b"v", 3600)
        store.delete(f"k{cycle % 7}")
    assert store.size() == 100
    assert store.expiry_entries <= 2 * 100 + 64 + 1


def test_rewrites_of_one_key_keep_one_live_deadline() -> None:
    """Rewriting a key with a TTL over and over keeps the heap small, and the last TTL holds."""
    clock = FakeClock()
    store = LocalStore(10, searchable=False, clock=clock)
    for _ in range(50_000):
        store.put("k", b"v", 3600)
    assert store.expiry_entries <= 2 * 1 + 64 + 1
    clock.now += 3599
    assert store.get("k") == b"v"
    clock.now += 2
    assert store.get("k") is None
    assert store.size() == 0


def test_compaction_keeps_every_live_deadline() -> None:
    """After many compactions, each live key still expires at its own deadline, no sooner."""
    clock = FakeClock()
    store = LocalStore(10_000, searchable=False, clock=clock)
    for i in range(500):
        store.put(f"keep{i}", b"v", 100 + i)  # deadlines 100..599 s from now
    for _ in range(20_000):
        store.put("churn", b"v", 50)
        store.delete("churn")
    store.put("forever", b"v")
    clock.now += 349.5  # keys whose ttl is 350 or more are still there
    assert store.size() == 250 + 1
    assert store.get("keep249") is None
    assert store.get("keep250") == b"v"
    clock.now += 1000
    assert store.keys() == ["forever"]


def test_the_sync_store_heap_stays_bounded_too() -> None:
    """InMemoryStore, the seed's sync store, uses the same engine: its heap stays small."""
    memories = InMemoryStore(max_size=100)
    for cycle in range(20_000):
        memories.add("u:s:k", {"content": f"turn {cycle}"}, ttl=3600)
        memories.delete("u:s:k")
    assert memories._store.expiry_entries <= 64 + 1
