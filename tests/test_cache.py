"""CachePrimitive: hits, misses, TTL, eviction, single-flight and bad keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from conftest import every_store_loses, namespace
from tta_dev_primitives import CachePrimitive, LambdaPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import CacheKeyError, InvalidArgumentError
from tta_dev_primitives.testing import capture_spans


class Counting:
    """An async step that counts its calls and can be made to wait on an event."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, x: Any, ctx: WorkflowContext) -> Any:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if x == "boom":
            raise RuntimeError("failed computation")
        return {"answer": x, "call": self.calls}


def by_input(x: Any, ctx: WorkflowContext) -> str:
    return str(x)


async def test_second_call_is_a_hit() -> None:
    """The same key returns the cached output without running the primitive again."""
    step = Counting()
    cache = CachePrimitive(LambdaPrimitive(step), by_input)
    ctx = WorkflowContext()
    first = await cache.execute("q", ctx)
    assert await cache.execute("q", ctx) == first
    assert step.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.stats()["hit_rate"] == 0.5


async def test_cached_none_is_a_hit() -> None:
    """A primitive that returns None is cached like any other output."""
    calls = 0

    def none(x: Any, ctx: WorkflowContext) -> None:
        nonlocal calls
        calls += 1

    cache = CachePrimitive(none, by_input)
    await cache.execute(1, WorkflowContext())
    await cache.execute(1, WorkflowContext())
    assert calls == 1


async def test_ttl_expiry_recomputes() -> None:
    """After ttl_seconds the next call runs the primitive again."""
    step = Counting()
    cache = CachePrimitive(step, by_input, ttl_seconds=0.05)
    await cache.execute("q", WorkflowContext())
    await asyncio.sleep(0.1)
    await cache.execute("q", WorkflowContext())
    assert step.calls == 2


async def test_size_bound_evicts_least_recently_used() -> None:
    """With max_size=2, a third key evicts the least recently used one."""
    step = Counting()
    cache = CachePrimitive(step, by_input, max_size=2)
    ctx = WorkflowContext()
    for x in ("a", "b", "a", "c", "a", "b"):
        await cache.execute(x, ctx)
    assert step.calls == 4  # a, b, c, then b again (evicted by c)


async def test_concurrent_misses_run_the_primitive_once() -> None:
    """Ten concurrent callers of one missing key share a single computation."""
    step = Counting()
    step.gate = asyncio.Event()
    cache = CachePrimitive(step, by_input)
    tasks = [asyncio.create_task(cache.execute("q", WorkflowContext())) for _ in range(10)]
    await step.entered.wait()
    await asyncio.sleep(0)  # let every caller reach the in-flight future
    step.gate.set()
    results = await asyncio.gather(*tasks)
    assert step.calls == 1
    assert all(r == results[0] for r in results)
    assert (cache.hits, cache.misses) == (9, 1)


async def test_exception_reaches_every_waiter_and_is_not_cached() -> None:
    """A failing computation raises in every concurrent caller; the next call retries."""
    step = Counting()
    step.gate = asyncio.Event()
    cache = CachePrimitive(step, by_input)
    tasks = [asyncio.create_task(cache.execute("boom", WorkflowContext())) for _ in range(3)]
    await step.entered.wait()
    await asyncio.sleep(0)
    step.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert step.calls == 1
    step.gate = None
    with pytest.raises(RuntimeError):
        await cache.execute("boom", WorkflowContext())
    assert step.calls == 2


async def test_cancelled_leader_lets_a_waiter_take_over() -> None:
    """If the caller computing a miss is cancelled, a waiting caller computes it instead."""
    step = Counting()
    step.gate = asyncio.Event()
    cache = CachePrimitive(step, by_input)
    leader = asyncio.create_task(cache.execute("q", WorkflowContext()))
    await step.entered.wait()
    waiter = asyncio.create_task(cache.execute("q", WorkflowContext()))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    step.gate.set()
    assert (await waiter)["answer"] == "q"
    assert step.calls == 2


@pytest.mark.parametrize(
    ("key_fn", "match"),
    [
        (lambda x, ctx: 42, "non-empty str"),
        (lambda x, ctx: "", "non-empty str"),
        (lambda x, ctx: x["missing"], "KeyError"),
    ],
)
async def test_bad_cache_keys_are_clear_errors(key_fn: Any, match: str) -> None:
    """A key function that raises or returns a non-str raises CacheKeyError; nothing runs."""
    step = Counting()
    cache = CachePrimitive(step, key_fn)
    with pytest.raises(CacheKeyError, match=match):
        await cache.execute({}, WorkflowContext())
    assert step.calls == 0


@pytest.fixture(
    params=[
        "in-process",
        pytest.param("redis_server", marks=pytest.mark.redis),
        pytest.param("redis_cluster", marks=pytest.mark.redis),
    ]
)
def cache_backend(request: pytest.FixtureRequest) -> str | None:
    """None (in-process), or the URL of a Redis server or cluster."""
    if request.param == "in-process":
        return None
    url: str = request.getfixturevalue(request.param).url
    return url


async def test_lone_surrogates_in_keys_and_outputs_are_alike_on_every_backend(
    cache_backend: str | None,
) -> None:
    """A key holding a lone surrogate (text cut inside a pair) is CacheKeyError on every
    backend, before the step runs; an output holding one is cached and returned as it is. On
    Redis the key reached the server's encoder (BackendError, or on a cluster a bare
    UnicodeEncodeError) and the output failed the call with BackendError after the step ran,
    where in-process both worked."""
    step = Counting()
    cache = CachePrimitive(step, by_input, backend=cache_backend, namespace=namespace())
    with pytest.raises(CacheKeyError, match="lone surrogate"):
        await cache.execute("cut \ud83d", WorkflowContext())
    assert step.calls == 0
    cut = CachePrimitive(
        LambdaPrimitive(lambda x, ctx: {"text": x + " \ude00"}),
        by_input,
        backend=cache_backend,
        namespace=namespace(),
    )
    assert await cut.execute("half", WorkflowContext()) == {"text": "half \ude00"}
    assert await cut.execute("half", WorkflowContext()) == {"text": "half \ude00"}
    assert cut.stats()["hits"] == 1
    for made in (cache, cut):
        await made.clear()
        await made.aclose()


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), True])
def test_bad_ttl_is_refused(ttl: Any) -> None:
    """ttl_seconds must be positive (or None for no expiry)."""
    with pytest.raises(ValueError, match="ttl"):
        CachePrimitive(Counting(), by_input, ttl_seconds=ttl)


async def test_cache_span_carries_cache_hit() -> None:
    """The CachePrimitive span says cache.hit; a miss has the wrapped primitive as child."""
    cache = CachePrimitive(LambdaPrimitive(Counting(), name="compute"), by_input)
    with capture_spans() as spans:
        await cache.execute("q", WorkflowContext())
        await cache.execute("q", WorkflowContext())
    miss, hit = spans.named("CachePrimitive")
    assert miss.attributes["cache.hit"] is False
    assert hit.attributes["cache.hit"] is True
    assert [s.name for s in spans.children(miss)] == ["compute"]
    assert spans.children(hit) == []


@pytest.mark.redis
async def test_redis_cache_is_shared_between_processes(redis_server: Any) -> None:
    """A Redis-backed cache answers another process's computation without running it."""
    from uuid import uuid4

    from conftest import run_python

    ns = f"cache:{uuid4().hex[:10]}"
    code = f"""
        import asyncio
        from tta_dev_primitives import CachePrimitive, WorkflowContext
        async def llm(prompt, ctx):
            return {{"answer": prompt.upper()}}
        async def main():
            cache = CachePrimitive(llm, lambda p, ctx: p, backend={redis_server.url!r},
                                   namespace={ns!r})
            print(await cache.execute("hello", WorkflowContext()), cache.misses)
            await cache.aclose()
        asyncio.run(main())
    """
    assert run_python(code) == "{'answer': 'HELLO'} 1"

    step = Counting()
    cache = CachePrimitive(step, by_input, backend=redis_server.url, namespace=ns)
    assert await cache.execute("hello", WorkflowContext()) == {"answer": "HELLO"}
    assert step.calls == 0
    assert cache.hits == 1
    await cache.clear()
    await cache.aclose()


@pytest.mark.redis
async def test_redis_cache_falls_back_in_process_when_redis_is_down(
    redis_server_factory: Any,
) -> None:
    """With Redis killed, the cache keeps working in-process; calls never fail."""
    server = redis_server_factory()
    step = Counting()
    # A killed server refuses at once: the timeout only bounds the first call, which a busy
    # machine took past 0.3 s (served in-process, not by Redis).
    cache = CachePrimitive(step, by_input, backend=server.url, redis_timeout=10, namespace="c1")
    with capture_spans() as spans:
        first = await cache.execute("q", WorkflowContext())
        server.kill()
        assert await cache.execute("q", WorkflowContext()) == first  # the in-process copy
        await cache.execute("other", WorkflowContext())
    assert step.calls == 2
    # Each call's span says which store answered its lookup: Redis, then in-process, every
    # call of the outage, not only the one that saw Redis fail.
    served = [(s.attributes.get("cache.backend"), s.attributes.get("cache.fallback"))
              for s in spans.named("CachePrimitive")]  # fmt: skip
    assert served == [("redis", None), ("in_memory", True), ("in_memory", True)]
    await cache.aclose()


def _nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


UNSTORABLE = {
    "a set": lambda: {1, 2},
    # json raises RecursionError (a RuntimeError) past Python's recursion limit
    "nested past json's recursion limit": lambda: _nested(100_000),
}


@pytest.mark.redis
@pytest.mark.parametrize("make", UNSTORABLE.values(), ids=UNSTORABLE.keys())
async def test_an_output_a_shared_cache_cannot_store_is_returned_uncached(
    redis_server: Any, caplog: pytest.LogCaptureFixture, make: Callable[[], Any]
) -> None:
    """A shared cache stores JSON: an output that is not JSON (a set, a model's message object,
    a structure nested deeper than json can encode) still reaches the caller, whose step has
    run (and been paid for); it is only not cached, with one warning naming why, however often
    it happens."""
    calls = 0
    output = make()

    def make_output(x: Any, ctx: WorkflowContext) -> Any:
        nonlocal calls
        calls += 1
        return output

    cache = CachePrimitive(make_output, by_input, backend=redis_server.url, namespace=namespace())
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.cache"):
        assert await cache.execute("q", WorkflowContext()) is output
        assert await cache.execute("q", WorkflowContext()) is output
    assert (calls, cache.misses, cache.hits) == (2, 2, 0)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1
    assert "JSON" in warned[0]
    await cache.aclose()


@pytest.mark.redis
async def test_a_full_redis_cache_still_returns_what_the_step_computed(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Under maxmemory + noeviction the store is refused (OOM) after the step ran: the caller
    gets the output, uncached, with one warning; entries stored before are still hits."""
    server = redis_server_factory(extra=("--maxmemory", "3mb", "--maxmemory-policy", "noeviction"))
    pad = "x" * 4000
    cache = CachePrimitive(
        LambdaPrimitive(lambda x, ctx: {"answer": x, "pad": pad}), by_input,
        ttl_seconds=None, backend=server.url, namespace=namespace(),
    )  # fmt: skip
    answered = 0
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.cache"):
        for i in range(2_000):  # bounded: 8 MB would be well past the limit
            assert (await cache.execute(f"q{i}", WorkflowContext()))["answer"] == f"q{i}"
            answered += 1
            if caplog.records:
                break
    assert caplog.records, "Redis never filled up"
    assert "full" in caplog.records[0].getMessage()
    assert await cache.execute(f"q{answered}", WorkflowContext()) is not None  # again: no raise
    assert len(caplog.records) == 1
    hits = cache.hits
    assert (await cache.execute("q0", WorkflowContext()))["answer"] == "q0"
    assert cache.hits == hits + 1  # stored before Redis filled
    await cache.clear()
    await cache.aclose()


@pytest.mark.redis
async def test_a_shared_cache_returns_on_a_miss_what_it_returns_on_a_hit(
    redis_server: Any,
) -> None:
    """A shared cache keeps JSON, so a hit gives a tuple back as a list and an int key as a
    str; the miss that stored it gives the same, so code that works once works every time."""
    cache = CachePrimitive(
        lambda x, ctx: {"pair": (1, 2), "by_id": {7: "seven"}}, by_input,
        backend=redis_server.url, namespace=namespace(),
    )  # fmt: skip
    first = await cache.execute("q", WorkflowContext())
    again = await cache.execute("q", WorkflowContext())
    assert first == again == {"pair": [1, 2], "by_id": {"7": "seven"}}
    assert (cache.misses, cache.hits) == (1, 1)
    await cache.clear()
    await cache.aclose()


def test_a_cache_shared_on_redis_needs_a_namespace_of_its_own() -> None:
    """Two caches of different steps in one Redis namespace would answer with each other's
    outputs; so a Redis URL without namespace= is refused, naming it."""
    with pytest.raises(InvalidArgumentError, match="namespace="):
        CachePrimitive(lambda x, ctx: x, by_input, backend="redis://127.0.0.1:1/0")


@pytest.mark.redis
async def test_a_store_that_loses_to_newer_changes_returns_the_output(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other processes change the key after this one's output was issued, before its store and
    before its retry (Redis says: a newer change stands, ``StaleWriteError``): the step's output
    is still returned, uncached, as for any store that fails."""
    ns = namespace()
    cache = CachePrimitive(lambda x, ctx: f"out {x}", lambda x, ctx: x, backend=redis_server.url,
                           namespace=ns)  # fmt: skip
    other = CachePrimitive(lambda x, ctx: "other", lambda x, ctx: x, backend=redis_server.url,
                           namespace=ns)  # fmt: skip
    every_store_loses(cache, other.clear, monkeypatch)
    try:
        assert await cache.execute("q", WorkflowContext()) == "out q"
    finally:
        await cache.aclose()
        await other.aclose()


@pytest.mark.parametrize("on_redis", [False, True])
async def test_an_output_computed_across_a_clear_is_not_cached(
    on_redis: bool, request: pytest.FixtureRequest
) -> None:
    """clear() while a miss runs (the model was just upgraded, say): the caller gets that
    output, but the cache does not keep it, and a call after the clear computes anew instead
    of joining the run begun before it. The old output was stored after the clear and served
    as if cached since."""
    backend = request.getfixturevalue("redis_server").url if on_redis else None
    version = "old"
    started, gate = asyncio.Event(), asyncio.Event()

    async def answer(x: int, ctx: WorkflowContext) -> str:
        made = f"{version} {x}"
        started.set()
        await gate.wait()
        return made

    cache = CachePrimitive(LambdaPrimitive(answer), by_input, backend=backend,
                           namespace=namespace())  # fmt: skip
    ctx = WorkflowContext()
    before = asyncio.create_task(cache.execute(1, ctx))
    await started.wait()
    await cache.clear()
    version = "new"
    after = asyncio.create_task(cache.execute(1, ctx))  # runs anew, not joining the old run
    gate.set()
    assert await before == "old 1"
    assert await after == "new 1"
    assert await cache.execute(1, ctx) == "new 1"  # the cache holds the new output only
    await cache.clear()
    await cache.aclose()


async def test_a_step_asking_its_own_cache_for_its_own_key_does_not_wait_for_itself() -> None:
    """A cached step that re-enters its cache with the key it is computing (directly, or from
    a parallel branch it starts) computes it as with no cache, instead of waiting forever on
    its own in-flight miss."""

    async def answer(question: str, ctx: WorkflowContext) -> str:
        normal = question.strip().lower()
        if normal != question:
            return await cached.execute(normal, ctx)
        return f"answer to {normal}"

    cached = CachePrimitive(answer, lambda q, ctx: q.strip().lower())
    result = await asyncio.wait_for(cached.execute(" Hi ", WorkflowContext()), 5)
    assert result == "answer to hi"
    assert await cached.execute("hi", WorkflowContext()) == "answer to hi"  # stored

    async def fan(q: str, ctx: WorkflowContext) -> Any:
        if q.startswith("!"):
            return q
        branches = LambdaPrimitive(lambda q, ctx: q) | (lambda q, ctx: fanned.execute("!" + q, ctx))
        return await branches.execute(q, ctx)

    fanned = CachePrimitive(fan, lambda q, ctx: q.lstrip("!"))
    assert await asyncio.wait_for(fanned.execute("q", WorkflowContext()), 5) == ["q", "!q"]
