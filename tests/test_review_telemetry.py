"""Review R29's telemetry findings: what spans and counters say about the calls they record.

Each test is one finding: nested captures, the backend a ``forget`` names, calls refused for
bad input, a recovery cut short, and a caller's error that wraps one of the library's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from conftest import Factory, namespace
from redis_server import RedisServer
from tta_dev_primitives import LambdaPrimitive, MemoryPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
)
from tta_dev_primitives.testing import capture_spans


def points(reader: InMemoryMetricReader, counter: str) -> list[tuple[dict[str, Any], int]]:
    """One counter's data points: (attributes, value)."""
    data = reader.get_metrics_data()
    return [
        (dict(point.attributes or {}), int(point.value))
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == counter
        for point in metric.data.data_points
    ]


async def test_nested_captures_each_keep_their_own_spans() -> None:
    """Captures are lists: leaving an inner one that caught nothing (equal to the outer, both
    empty) removed the outer one, which then missed every span and raised on leaving."""
    step = LambdaPrimitive(lambda x, ctx: x, name="step")
    with capture_spans() as outer:
        with capture_spans() as inner:
            pass
        await step.execute(1, WorkflowContext())
    assert outer.names() == ["step"]
    assert inner.names() == []


@pytest.mark.redis
async def test_forget_names_redis_as_the_backend_that_served_it(
    redis_server: RedisServer, counters: InMemoryMetricReader
) -> None:
    """``forget`` needs Redis and deletes there: its span and count said ``in_memory``, so a
    dashboard counted every "forget this user" as a fallback."""
    memory = MemoryPrimitive(redis_server.url, namespace=namespace())
    await memory.add("u1:s1:a", {"content": "olives"})
    with capture_spans() as spans:
        assert await memory.forget("u1") == 1
    assert spans.one("memory.forget").attributes["memory.backend"] == "redis"
    forgets = [a for a, _ in points(counters, "tta.memory.operations")
               if a["memory.operation"] == "forget"]  # fmt: skip
    assert [a["memory.backend"] for a in forgets] == ["redis"]
    await memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("add", lambda m: m.add("", {"content": "x"})),
        ("add", lambda m: m.add("u1:s1:a", {"content": "x"}, ttl=-1)),
        ("add", lambda m: m.add("u1:s1:a", {"content": object()})),
        ("get", lambda m: m.get("")),
        ("search", lambda m: m.search("olives", limit=0)),
        ("delete", lambda m: m.delete("")),
        ("touch", lambda m: m.touch("u1:s1:a", -5)),
        ("list", lambda m: m.list_memories(limit=0)),
        ("forget", lambda m: m.forget("")),
    ],
)
async def test_a_call_refused_for_bad_input_is_a_span_and_a_count(
    redis_server: RedisServer, counters: InMemoryMetricReader, operation: str, call: Any
) -> None:
    """observability.md: ``memory.backend`` is ``none`` for a call "refused before it reached
    one, for bad input". Such calls raised before any span or count existed."""
    memory = MemoryPrimitive(redis_server.url, namespace=namespace())
    with capture_spans() as spans, pytest.raises((InvalidArgumentError, InvalidArgumentTypeError)):
        await call(memory)
    span = spans.one(f"memory.{operation}")
    assert span.attributes["memory.backend"] == "none"
    assert [e.name for e in span.events] == ["exception"]
    counted = [(a["memory.backend"], a["memory.outcome"], v)
               for a, v in points(counters, "tta.memory.operations")
               if a["memory.operation"] == operation]  # fmt: skip
    assert counted == [("none", "error", 1)]
    await memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(
    "ending",
    [
        "asyncio.run",
        # The collector closing coroutines their closed loop abandoned can raise inside
        # redis-py's (awaiting in its cleanup), which Python reports as "Exception ignored":
        # the caller's way of ending the loop, not what this test checks.
        pytest.param(
            "loop closed",
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
    ],
)
def test_a_recovery_cut_short_is_not_counted_as_a_success(
    redis_server_factory: Factory,
    counters: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
    ending: str,
) -> None:
    """A request's ``asyncio.run`` ending cancels the background replay it started. Its span
    said a success served in-process, and the writes its batches had sent were never counted
    in ``tta.memory.replayed_writes`` (the next recovery counts only the rest).

    A loop closed without cancelling it (a sync wrapper's ``run_until_complete``, then
    ``close``) leaves it pending until the collector closes it, in another context: that was
    counted as a return to Redis, and OpenTelemetry logged "Failed to detach context"."""
    total = 5_000  # ten replay batches: the short request ends after the first
    # An earlier test's recovery left pending by its closed loop, collected in the middle of
    # this one, ended its span and counted its metrics here (4 workers: seen once).
    gc.collect()
    server = redis_server_factory()
    memory = MemoryPrimitive(
        server.url, namespace=namespace(), redis_timeout=0.5,
        recovery_interval=0.05, max_recovery_interval=0.2,
    )  # fmt: skip

    async def outage() -> None:
        await memory.add("u1:s1:first", {"content": "before"})
        server.kill()
        for i in range(total):
            await memory.add(f"u1:s1:{i}", {"content": f"turn {i} with a few more words"})
        assert memory.get_backend_info()["journal_size"] == total

    async def short_request() -> None:
        deadline = time.monotonic() + 60
        while memory.get_backend_info()["journal_size"] == total:
            assert time.monotonic() < deadline, memory.get_backend_info()
            await memory.get("u1:s1:first")  # a due probe starts the replay in the background
            await asyncio.sleep(0.001)
        # The request ends here, with the replay part-way: asyncio.run cancels it.

    async def later() -> int:
        deadline = time.monotonic() + 60
        while not (memory.get_backend_info()["journal_size"] == 0 and memory.using_redis):
            assert time.monotonic() < deadline, memory.get_backend_info()
            await memory.get("u1:s1:first")
            await asyncio.sleep(0.05)
            gc.collect()  # (closes a recovery left pending by a closed loop)
        size = await memory.size()
        await memory.aclose()
        return size

    asyncio.run(outage())
    server.start()
    with capture_spans() as spans, caplog.at_level(logging.ERROR, "opentelemetry"):
        if ending == "asyncio.run":
            asyncio.run(short_request())
        else:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(short_request())
            loop.close()  # the replay still pending in it
        later_began = time.time_ns()
        size = asyncio.run(later())
        gc.collect()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    recoveries = [  # (and any failed probe)
        s for s in spans
        if s.name == "memory.recover" and s.attributes.get("memory.namespace") == memory.namespace
    ]  # fmt: skip
    # The short request's cut (a busy machine can make a false outage in ``later``, and its
    # aclose cut that recovery too: not this one).
    cut = [s for s in recoveries if "tta.cancelled" in [e.name for e in s.events]
           and (s.start_time or 0) < later_began]  # fmt: skip
    assert len(cut) == 1, [(s.attributes, [e.name for e in s.events]) for s in recoveries]
    assert cut[0].attributes["memory.backend"] == "none"
    assert "memory.recovered" not in [e.name for e in cut[0].events]
    for span in recoveries:
        assert not span.attributes.get("memory.fallback")
    assert size == total  # (the first write went with the killed server)
    recovers = [(a["memory.backend"], a["memory.outcome"])
                for a, _ in points(counters, "tta.memory.operations")
                if a["memory.operation"] == "recover"]  # fmt: skip
    assert ("none", "cancelled") in recovers  # as any call cancelled: not a failure
    assert ("redis", "ok") in recovers
    assert ("in_memory", "ok") not in recovers
    replayed = sum(v for _, v in points(counters, "tta.memory.replayed_writes"))
    # Every write reached Redis once; a batch cut after Redis applied it may be sent again.
    # (A replay the collector closes may not run its own cleanup, which counts the cut batch:
    # there only the upper bound holds. The writes themselves are all stored, above.)
    assert (total if ending == "asyncio.run" else 0) <= replayed <= total + 1_000
    # The cut one is not a recovery: only the returns to Redis count (a busy machine can make
    # a false outage after the first, and a second return).
    operations = points(counters, "tta.memory.operations")
    returned = sum(v for a, v in operations if a["memory.operation"] == "recover"
                   and a["memory.outcome"] == "ok")  # fmt: skip
    assert sum(v for _, v in points(counters, "tta.memory.recoveries")) == returned >= 1


async def test_a_callers_error_wrapping_the_librarys_does_not_carry_its_message() -> None:
    """Library errors go on spans by type only (they name keys, hence users). A step that
    catches one and raises its own is recorded in full, but its traceback quoted the
    library's error, key and all, on the step's span and every span around it."""
    memory = MemoryPrimitive()

    async def step(x: str, ctx: WorkflowContext) -> str:
        try:
            await memory.add(f"{ctx.user_id}:{'s' * 2000}", {"content": x})
        except InvalidMemoryKeyError as exc:
            raise RuntimeError("could not store the turn") from exc
        return x

    async def bare(x: str, ctx: WorkflowContext) -> str:
        try:
            await memory.get("")
        except InvalidArgumentError:
            raise ValueError("no key given") from None  # nothing chained: recorded whole
        return x

    workflow = LambdaPrimitive(step, name="store") >> LambdaPrimitive(lambda x, c: x, name="n")
    with capture_spans() as spans, pytest.raises(RuntimeError):
        await workflow.execute("hello", WorkflowContext(user_id="userQZXJ"))
    events = [e for s in spans for e in s.events if e.name == "exception"]
    outer = [e for e in events if e.attributes["exception.type"] == "builtins.RuntimeError"]
    assert outer, [e.attributes for e in events]
    for event in events:
        assert not [v for v in event.attributes.values() if "QZXJ" in str(v)], event.attributes
    shown = outer[0].attributes
    assert shown["exception.message"] == "could not store the turn"
    trace = str(shown["exception.stacktrace"])
    assert "tta_dev_primitives.exceptions.InvalidMemoryKeyError" in trace
    assert "RuntimeError: could not store the turn" in trace
    assert "in step" in trace  # the frames are there, only the library's message is not

    with capture_spans() as spans, pytest.raises(ValueError, match="no key given"):
        await LambdaPrimitive(bare, name="bare").execute("x", WorkflowContext())
    [event] = [e for e in spans.one("bare").events if e.name == "exception"]
    assert "ValueError: no key given" in str(event.attributes["exception.stacktrace"])
    await memory.aclose()
