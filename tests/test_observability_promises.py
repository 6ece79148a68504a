"""observability.md's promises: outage telemetry on a real redis-server, and the cache counter.

The fallback event names the error's type; the return to Redis is a ``memory.recover`` span with
a ``memory.recovered`` event; the fallback, recovery and replay counters count them;
``tta.cache.requests`` counts cache lookups by ``cache.hit``; ``tta.memory.invalid_values`` a
stored value that is not a JSON object; a call no backend answered is not counted as served
in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from conftest import Factory, eventually, fast_recovery, namespace
from redis_server import RedisServer
from tta_dev_primitives import CachePrimitive, MemoryPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import EmbeddingError
from tta_dev_primitives.testing import capture_spans


def points(reader: InMemoryMetricReader) -> Iterator[tuple[str, Any, int]]:
    """Every counter's data points: (counter name, the point's attributes, its value)."""
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    yield metric.name, point.attributes, int(point.value)


def totals(reader: InMemoryMetricReader) -> dict[str, int]:
    """Each counter's total over its attributes."""
    found: dict[str, int] = {}
    for name, _, value in points(reader):
        found[name] = found.get(name, 0) + value
    return found


def by_attribute(reader: InMemoryMetricReader, counter: str, attribute: str) -> dict[Any, int]:
    """One counter's values by one of its attributes."""
    return {attrs[attribute]: value for name, attrs, value in points(reader) if name == counter}


async def recovered(memory: MemoryPrimitive) -> None:
    """Drive probes until the journal is replayed and Redis serves again."""

    async def done() -> bool:
        return await memory.flush() and await memory.get("__probe__") is None and memory.using_redis

    await eventually(done, within=15)


@pytest.mark.redis
async def test_outage_spans_events_and_counters(
    redis_server_factory: Factory, counters: InMemoryMetricReader
) -> None:
    """Kill Redis, write twice, bring it back: every documented span, event and counter shows."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:before", {"content": "written to Redis"})
    assert memory.using_redis
    server.kill()
    with capture_spans() as spans:
        await memory.add("u1:s1:a", {"content": "written during the outage"})
        await memory.add("u1:s1:b", {"content": "also during the outage"})
        server.start()
        await recovered(memory)

    first = spans.named("memory.add")[0]
    assert first.attributes["memory.fallback"] is True
    assert first.attributes["memory.backend"] == "in_memory"
    (event,) = [e for e in first.events if e.name == "memory.fallback"]
    error = event.attributes["memory.error"]
    assert isinstance(error, str)
    assert error.endswith("Error"), error  # the error's type name

    recover = spans.named("memory.recover")
    assert recover, spans.names()
    events = [e for s in recover for e in s.events if e.name == "memory.recovered"]
    assert [e.attributes["memory.replayed_writes"] for e in events] == [2]
    assert all(s.attributes["memory.namespace"] == memory.namespace for s in recover)
    # A trace of its own: started by some call's probe, it is no part of that call's request.
    assert all(s.parent is None for s in recover), [s.parent for s in recover]

    counted = totals(counters)
    assert counted.get("tta.memory.fallbacks") == 1, counted
    assert counted.get("tta.memory.recoveries") == 1, counted
    assert counted.get("tta.memory.replayed_writes") == 2, counted

    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await other.get("u1:s1:a") == {"content": "written during the outage"}
    assert await other.get("u1:s1:b") == {"content": "also during the outage"}
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_a_cancelled_operation_is_counted_apart_and_not_marked_failed(
    counters: InMemoryMetricReader,
) -> None:
    """An add whose request timed out while its embedder ran: ``memory.outcome`` is
    "cancelled" and its span carries no error (it counted as an error, its span failed)."""
    import asyncio

    from opentelemetry.trace import StatusCode

    started, gate = asyncio.Event(), asyncio.Event()

    async def embed(texts: list[str]) -> list[list[float]]:
        started.set()
        await gate.wait()
        return [[1.0, 0.0] for _ in texts]

    memory = MemoryPrimitive(embed=embed)
    with capture_spans() as spans:
        task = asyncio.create_task(memory.add("u1:s1:a", {"content": "never mind"}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert by_attribute(counters, "tta.memory.operations", "memory.outcome") == {"cancelled": 1}
    (span,) = spans.named("memory.add")
    assert span.status.status_code is not StatusCode.ERROR
    assert await memory.get("u1:s1:a") is None


async def test_cache_requests_are_counted_by_hit(counters: InMemoryMetricReader) -> None:
    """Two misses and a hit: ``tta.cache.requests`` {cache.hit=false} 2, {cache.hit=true} 1."""
    cached = CachePrimitive(lambda x, ctx: x * 2, lambda x, ctx: str(x))
    for x in (1, 1, 2):
        await cached.execute(x, WorkflowContext())
    assert by_attribute(counters, "tta.cache.requests", "cache.hit") == {False: 2, True: 1}
    assert cached.stats()["hits"] == 1


@pytest.mark.redis
async def test_a_stored_value_that_is_not_json_is_counted(
    redis_server_factory: Factory, counters: InMemoryMetricReader
) -> None:
    """A value overwritten in Redis with non-JSON: get misses; tta.memory.invalid_values counts."""
    import redis.asyncio as aioredis

    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:a", {"content": "hello"})
    raw = aioredis.Redis.from_url(server.url)
    (value_key,) = [k async for k in raw.scan_iter(match=f"{memory.namespace}:*:v:u1:s1:a")]
    await raw.set(value_key, b"not json {")
    await raw.aclose()
    reader = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await reader.get("u1:s1:a") is None
    assert totals(counters).get("tta.memory.invalid_values") == 1
    await reader.aclose()
    await memory.clear()
    await memory.aclose()


async def test_user_ids_and_contents_never_reach_spans() -> None:
    """observability.md: "User ids and memory contents are never put on spans", memory spans
    included (keys hold the user id), on every operation, in attributes and events alike."""
    from tta_dev_primitives import turn_key

    user, content = "userQZXJ", "contentQZXJ words"

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(text) % 7) + 1.0] for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=2)
    workflow = (
        memory.recall(lambda q, ctx: q, scope=lambda q, ctx: ctx.user_id or "")
        >> (lambda q, ctx: f"{content} {q}")
        >> memory.remember(
            lambda out, ctx: turn_key(ctx.user_id or "", ctx.session_id or ""),
            lambda out, ctx: {"role": "assistant", "content": out},
        )
    )
    with capture_spans() as spans:
        for _ in range(2):
            await workflow.execute("contentQZXJ?", WorkflowContext(user_id=user, session_id="s1"))
        key = (await memory.list_memories(user)).items[0][0]
        await memory.get(key)
        await memory.search_scored(content, scope=user)
        await memory.touch(key, 60)
        await memory.delete(key)
        await memory.forget(user)
    assert {"memory.add", "memory.search", "memory.embed", "memory.forget"} <= set(spans.names())
    for span in spans:
        shown = [
            *span.attributes.values(),
            *(v for e in span.events for v in e.attributes.values()),
        ]
        assert not [v for v in shown if "QZXJ" in str(v)], (span.name, shown)
    await memory.aclose()


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "key": "userQZXJ:s1:1", "value": "contentQZXJ not a dict"},
        {"op": "get", "key": ["userQZXJ"]},
        {"op": "forgetQZXJ", "key": "userQZXJ:s1:1"},
        {"op": "search", "query": ["contentQZXJ"]},
    ],
)
async def test_a_malformed_typed_operation_reaches_spans_by_its_type_only(
    operation: dict[str, Any],
) -> None:
    """A typed operation is validated by the library, and pydantic's message quotes the input
    (a key with its user, a memory's text): like the library's own errors, the span records its
    type alone, while the caller still gets the message whole."""
    import pydantic

    memory = MemoryPrimitive()
    with capture_spans() as spans, pytest.raises(pydantic.ValidationError) as raised:
        await memory.execute(operation, WorkflowContext())
    assert "QZXJ" in str(raised.value)  # the caller is told what was wrong
    failed = [e for span in spans for e in span.events if e.name == "exception"]
    assert failed, "the span records the failure"
    for event in failed:
        assert event.attributes["exception.type"] == "pydantic_core._pydantic_core.ValidationError"
        assert not [v for v in event.attributes.values() if "QZXJ" in str(v)], event.attributes
    await memory.aclose()


@pytest.mark.redis
async def test_dropped_journal_writes_are_counted_on_overflow_and_on_close(
    redis_server_factory: Factory, counters: InMemoryMetricReader
) -> None:
    """``tta.memory.journal_dropped`` counts the writes a full journal dropped, and those still
    unsent when ``aclose()`` ran during the outage, each with a ``memory.journal_dropped``
    event: the close's on its own ``memory.close`` span (aclose had none, and the event was
    lost unless the caller happened to have a span open)."""
    from tta_dev_primitives.exceptions import UnsentWritesError

    server = redis_server_factory()
    memory = fast_recovery(server.url, max_journal=3)
    await memory.add("warm", {"v": 0})
    server.kill()
    with capture_spans() as spans:
        for i in range(5):
            # (a probe that found no Redis before each: the cap is not lifted for one on its way)
            await memory.flush()
            await memory.add(f"k{i}", {"v": i})
        assert totals(counters).get("tta.memory.journal_dropped") == 2
        with pytest.raises(UnsentWritesError):
            await memory.aclose()
    assert totals(counters).get("tta.memory.journal_dropped") == 5
    events = [e for s in spans for e in s.events if e.name == "memory.journal_dropped"]
    assert sorted(int(e.attributes["memory.dropped_writes"]) for e in events) == [1, 1, 3]  # type: ignore[arg-type]
    close = spans.one("memory.close")
    dropped = [e for e in close.events if e.name == "memory.journal_dropped"]
    assert [e.attributes["memory.dropped_writes"] for e in dropped] == [3]
    assert close.status.status_code.name == "ERROR"  # UnsentWritesError
    assert [s.name for s in spans.children(close)] == ["memory.flush"]


async def test_size_is_a_span_as_documented() -> None:
    """observability.md lists ``memory.size`` among the memory spans: it was never made."""
    memory = MemoryPrimitive()
    await memory.add("k", {"v": 1})
    with capture_spans() as spans:
        assert await memory.size() == 1
    assert spans.one("memory.size").attributes["memory.backend"] == "in_memory"


@pytest.mark.redis
async def test_dead_letters_and_stale_writes_are_counted(
    redis_server_factory: Factory, counters: InMemoryMetricReader
) -> None:
    """A replayed write Redis refuses for its data counts in ``tta.memory.dead_letters``; one a
    newer change beat counts in ``tta.memory.stale_writes``."""
    from tta_dev_primitives.stores._base import Put

    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("k", {"v": "before"})
    server.stall()
    await memory.add("k", {"v": "journalled"})  # times out: journalled
    # What an older version let into the journal: a ttl Redis refuses (validation stops it now).
    memory._store._journal.add(Put("bad", '{"v":2}', 1e15, None, "0"), None)
    server.resume()
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    await other.add("k", {"v": "newer"})  # newer than the journalled write
    await recovered(memory)
    info = memory.get_backend_info()
    assert (info["dead_letters"], info["stale_writes"]) == (1, 1)
    counted = totals(counters)
    assert counted.get("tta.memory.dead_letters") == 1, counted
    assert counted.get("tta.memory.stale_writes") == 1, counted
    assert await other.get("k") == {"v": "newer"}
    await other.aclose()
    await memory.clear()
    await memory.aclose()


@pytest.mark.redis
async def test_a_call_no_backend_answered_is_not_counted_as_served_in_process(
    redis_server: RedisServer, counters: InMemoryMetricReader
) -> None:
    """On a Redis memory, a call cancelled while Redis had not answered, and one whose embedder
    failed before either backend saw it, are ``memory.backend="none"``: counted as served
    in-process, they showed a quarter of a healthy Redis's calls as fallbacks (a review)."""

    async def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("the model is down")

    memory = MemoryPrimitive(redis_server.url, namespace=namespace(), redis_timeout=5)
    embedding = MemoryPrimitive(redis_server.url, namespace=namespace(), embed=broken, dims=4)
    try:
        await memory.add("u1:s1:a", {"content": "olives"})  # connected
        with capture_spans() as spans:
            with redis_server.stalled():
                for call in (memory.add("u1:s1:b", {"content": "x"}), memory.get("u1:s1:a"),
                             memory.search("olives")):  # fmt: skip
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(call, 0.1)
            with pytest.raises(EmbeddingError):
                await embedding.add("u1:s1:c", {"content": "capers"})
        backends = [(span.name, span.attributes["memory.backend"]) for span in spans
                    if span.name != "memory.embed"]  # fmt: skip
        assert sorted(backends) == [("memory.add", "none"), ("memory.add", "none"),
                                    ("memory.get", "none"), ("memory.search", "none")]  # fmt: skip
        assert memory.using_redis
        served = {point["memory.backend"] for name, point, _ in points(counters)
                  if name == "tta.memory.operations"}  # fmt: skip
        assert served == {"redis", "none"}  # the first add, then the four
    finally:
        await memory.aclose()
        await embedding.aclose()
