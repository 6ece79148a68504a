"""InMemoryStore and MemoryPrimitive behave like a naive model under random operations."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from search_model import MemoryModel
from tta_dev_primitives import InMemoryStore, MemoryPrimitive

WORDS = ["alpha", "alps", "beta", "bet", "gamma", "redis", "red", "timeout", "Time", "ünï"]
KEYS = [
    "u1:s1:a",
    "u1:s1:b",
    "u1:s1:e",
    "u1:s2:c",
    "u10:s1:d",
    "u10:s2:f",
    "u1:s1",
    "plain",
    "other:x",
    "other:y",
]
SCOPES = [None, "u1", "u1:s1", "u1:s1:", "u10", "u", "plain", "other"]

text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(" ".join)
values = st.fixed_dictionaries(
    {"content": text},
    optional={"tags": st.lists(text, max_size=2), "meta": st.fixed_dictionaries({"note": text})},
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: w[:2]),
    st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(" ".join),
)


class FakeClock:
    """A clock the test moves by hand, so TTLs expire exactly when the model says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class StoreMachine(RuleBasedStateMachine):
    """The sync InMemoryStore against the model, with LRU eviction and TTLs on a fake clock."""

    @initialize(max_size=st.integers(1, 12))
    def setup(self, max_size: int) -> None:
        self.clock = FakeClock()
        self.store = InMemoryStore(max_size=max_size)
        self.store._store._clock = self.clock  # the sync store has no clock argument of its own
        self.model = MemoryModel(max_size)

    @rule(key=st.sampled_from(KEYS), value=values,
          ttl=st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0])))  # fmt: skip
    def add(self, key: str, value: dict[str, Any], ttl: float | None) -> None:
        self.store.add(key, value, ttl)
        self.model.add(key, value, ttl)

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str) -> None:
        assert self.store.get(key) == self.model.get(key)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        assert self.store.delete(key) == self.model.delete(key)

    @rule(query=queries, limit=st.integers(1, 8), scope=st.sampled_from(SCOPES))
    def search(self, query: str, limit: int, scope: str | None) -> None:
        assert self.store.search(query, limit, scope=scope) == self.model.search(
            query, limit, scope
        )

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.model.now += seconds

    @precondition(lambda self: len(self.model.items) > 0)
    @rule()
    def clear(self) -> None:
        self.store.clear()
        for key in list(self.model.items):
            self.model.drop(key)

    @invariant()
    def same_keys_in_lru_order(self) -> None:
        self.model.expire()
        assert self.store.keys() == sorted(self.model.items, key=lambda k: self.model.items[k].seq)
        assert self.store.size() == len(self.model.items)


TestInMemoryStore = StoreMachine.TestCase
TestInMemoryStore.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class PrimitiveMachine(RuleBasedStateMachine):
    """MemoryPrimitive (in-process) against the same model, through its async API."""

    @initialize(max_size=st.integers(1, 12))
    def setup(self, max_size: int) -> None:
        self.clock = FakeClock()
        self.memory = MemoryPrimitive(max_size=max_size, clock=self.clock)
        self.model = MemoryModel(max_size)
        self.loop = asyncio.new_event_loop()

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @rule(key=st.sampled_from(KEYS), value=values,
          ttl=st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0])))  # fmt: skip
    def add(self, key: str, value: dict[str, Any], ttl: float | None) -> None:
        self.run(self.memory.add(key, value, ttl))
        self.model.add(key, value, ttl)

    @rule(key=st.sampled_from(KEYS))
    def get(self, key: str) -> None:
        assert self.run(self.memory.get(key)) == self.model.get(key)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: str) -> None:
        assert self.run(self.memory.delete(key)) == self.model.delete(key)

    @rule(query=queries, limit=st.integers(1, 8), scope=st.sampled_from(SCOPES))
    def search(self, query: str, limit: int, scope: str | None) -> None:
        got = self.run(self.memory.search(query, limit, scope=scope))
        assert got == self.model.search(query, limit, scope)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.model.now += seconds

    @rule()
    def clear(self) -> None:
        self.run(self.memory.clear())
        for key in list(self.model.items):
            self.model.drop(key)

    @invariant()
    def same_size(self) -> None:
        self.model.expire()
        assert self.run(self.memory.size()) == len(self.model.items)


TestMemoryPrimitiveModel = PrimitiveMachine.TestCase
TestMemoryPrimitiveModel.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
