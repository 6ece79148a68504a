"""InMemoryStore and MemoryPrimitive behave like a naive model under random operations; and
search, list_memories and forget with scopes of every odd form (empty segments, leading and
trailing ':') touch exactly the model's keys in-process and on Redis, its stand-by copy too."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from redis_server import RedisServer
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
    # Empty segments and a leading ':': keys like any other, in the scopes of their prefixes.
    "u1:",
    "u1::x",
    ":u1:s1",
]
#: Odd forms too: "u1::" is scope "u1:" (keys u1: and u1::...), never all of u1.
SCOPES = [None, "u1", "u1:s1", "u1:s1:", "u10", "u", "plain", "other", "u1::", "u1:::", ":u1"]

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

    @rule(scope=st.sampled_from(SCOPES), limit=st.integers(1, 5))
    def list_memories(self, scope: str | None, limit: int) -> None:
        keys: list[str] = []
        cursor = None
        while True:
            page = self.run(self.memory.list_memories(scope, limit=limit, cursor=cursor))
            keys += [key for key, _ in page.items]
            if (cursor := page.cursor) is None:
                break
        assert keys == self.model.list(scope)

    @rule(scope=st.sampled_from([s for s in SCOPES if s is not None]))
    def forget(self, scope: str) -> None:
        assert self.run(self.memory.forget(scope)) == self.model.forget(scope)

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


# -- Scopes of every odd form, on each backend ---------------------------------------------------

#: Segments that make keys and scopes with empty segments, leading and trailing ':' (and so
#: scopes of only ':', which name no key prefix), and a user whose id another one's extends.
SEGMENTS = ["u1", "u10", "s1", "", "a"]
odd_keys = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(":".join).filter(bool)
odd_scopes = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(":".join)
#: The case that lost memories: "u1::" holds u1: and u1::x only.
SHRUNK = {"keys": ["u1", "u1:", "u1::x", "u1:s1", "u1:s1:a", "u2:s1:a"], "scopes": ["u1::"]}


@st.composite
def keys_and_scopes(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Keys, and scopes that are random or cut from one of the keys (anywhere, so mid-segment
    too) with nothing, ':' or '::' after: scopes near the keys, which hold some of them."""
    keys = draw(st.lists(odd_keys, min_size=1, max_size=8, unique=True))
    near = st.tuples(st.sampled_from(keys), st.integers(0, 12), st.sampled_from(["", ":", "::"]))
    cut = near.map(lambda t: t[0][: t[1] or len(t[0])] + t[2])
    return keys, draw(st.lists(st.one_of(odd_scopes, cut), min_size=1, max_size=3))


async def _scope_calls_touch_the_model_s_keys(
    memory: MemoryPrimitive, keys: list[str], scopes: list[str]
) -> None:
    """For each scope, on all of ``keys`` written afresh (``_one_scope``)."""
    for scope in scopes:
        await _one_scope(memory, keys, scope)


async def _one_scope(memory: MemoryPrimitive, keys: list[str], scope: str) -> None:
    """Search (by a word and blank), every page of list_memories and forget see exactly the
    model's keys of ``scope``, and forget leaves exactly the rest (on Redis in the in-process
    stand-by copy too); a scope of only ':' is refused by name on every call, and changes
    nothing."""
    from tta_dev_primitives.exceptions import InvalidArgumentError

    model = MemoryModel(max_size=100)
    for key in keys:
        await memory.add(key, {"content": f"apple {key}"})
        model.add(key, {"content": f"apple {key}"}, None)
    if not scope.strip(":"):
        calls = (
            memory.search_items("apple", 50, scope=scope),
            memory.search_items("", 50, scope=scope),
            memory.list_memories(scope),
            memory.forget(scope),
        )
        for call in calls:
            with pytest.raises(InvalidArgumentError, match=re.escape(f"scope {scope!r} is")):
                await call
        assert await memory.size() == len(keys)
        return
    want = model.list(scope)  # newest write first
    context = (scope, keys)
    assert sorted(k for k, _ in await memory.search_items("apple", 50, scope=scope)) == sorted(
        want
    ), context
    assert [k for k, _ in await memory.search_items("", 50, scope=scope)] == want, context
    listed: list[str] = []
    cursor = None
    while True:
        page = await memory.list_memories(scope, limit=3, cursor=cursor)
        listed += [k for k, _ in page.items]
        if (cursor := page.cursor) is None:
            break
    assert listed == want, context
    assert await memory.forget(scope) == len(want), context
    left = sorted(set(keys) - set(want))
    assert sorted(k for k, _ in (await memory.list_memories(None, limit=50)).items) == left
    local = getattr(memory._store, "local", None)  # on Redis: the stand-by copy
    if local is not None:
        assert sorted([k for k in keys if await local.get(k) is not None]) == left, context


@settings(max_examples=100, deadline=None)
@given(case=keys_and_scopes())
@example(case=(SHRUNK["keys"], SHRUNK["scopes"]))
def test_odd_scopes_touch_exactly_the_model_s_keys_in_process(
    case: tuple[list[str], list[str]],
) -> None:
    """In-process, list_memories and forget normalized the scope twice: "u1::" (scope "u1:")
    listed and deleted every memory of u1."""

    async def body() -> None:
        memory = MemoryPrimitive()
        try:
            await _scope_calls_touch_the_model_s_keys(memory, *case)
        finally:
            await memory.aclose()

    asyncio.run(body())


@pytest.mark.redis
def test_odd_scopes_touch_exactly_the_model_s_keys_on_redis(redis_server: RedisServer) -> None:
    """On Redis, forget("u1::") deleted the 2 memories of scope "u1:" in Redis but all of u1
    from the in-process stand-by copy, which then served an outage without them."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=keys_and_scopes())
    @example(case=(SHRUNK["keys"], SHRUNK["scopes"]))
    def check(case: tuple[list[str], list[str]]) -> None:
        async def body() -> None:
            memory = MemoryPrimitive(
                redis_server.url, namespace=f"scopes:{uuid4().hex[:10]}", redis_timeout=10.0
            )
            try:
                await _scope_calls_touch_the_model_s_keys(memory, *case)
                assert memory.using_redis
            finally:
                await memory.clear()
                await memory.aclose()

        asyncio.run(body())

    check()
