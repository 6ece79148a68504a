"""A memory kept at module level and used by one ``asyncio.run`` after another: the pattern of
a serverless handler or a script, each invocation its own event loop, with calls at once
inside each. Nothing the memory keeps to order its own calls may belong to the first loop: an
``asyncio.Lock`` that two calls waited on is bound to their loop and raises on any other."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import fast_recovery, namespace, replayed, threads_at_once
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendUnavailableError, IncompleteOperationError


async def _invocation(memory: MemoryPrimitive, number: int) -> list[int]:
    """One handler's work: four turns written and four questions asked at once, then a clear
    (after which the engine's facts are checked again, under its lock)."""
    await asyncio.gather(
        *(memory.add(f"u1:s{number}:{i}", {"text": f"turn {i} about hiking"}) for i in range(4))
    )
    found = await asyncio.gather(
        *(memory.search(f"what did turn {i} say about hiking", limit=3) for i in range(4))
    )
    await memory.clear()
    return [len(hits) for hits in found]


async def _size_once_replayed(memory: MemoryPrimitive, url: str, *, close: bool = False) -> int:
    """How many memories Redis holds once ``memory``'s journal was replayed (read by another
    client); ``close`` closes ``memory`` too, on this loop."""
    await replayed(memory)
    reader = fast_recovery(url, memory.namespace)
    try:
        return await reader.size()
    finally:
        await reader.aclose()
        if close:
            await memory.aclose()


def _serve_three_invocations(memory: MemoryPrimitive) -> None:
    try:
        for number in range(3):
            assert asyncio.run(_invocation(memory, number)) == [3, 3, 3, 3]
    finally:
        asyncio.run(memory.aclose())


def test_in_process_memory_serves_one_event_loop_after_another() -> None:
    _serve_three_invocations(MemoryPrimitive())


@pytest.mark.redis
@pytest.mark.parametrize(
    ("server", "engine"), [("redis_server", "replica"), ("redis_query_engine", "redis")]
)
def test_redis_memory_serves_one_event_loop_after_another(
    request: pytest.FixtureRequest, server: str, engine: str, tmp_path: Path
) -> None:
    url = request.getfixturevalue(server).url
    _serve_three_invocations(
        MemoryPrimitive(
            url, namespace=namespace(), search_engine=engine, journal_path=tmp_path / "journal"
        )
    )


@pytest.mark.redis
def test_an_outage_in_one_invocation_is_replayed_in_a_later_one(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Writes journalled while Redis is away, in one ``asyncio.run``, reach Redis in a later
    one: its loop is gone with the first recovery's timer, so the next invocation replays."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url, journal_path=tmp_path / "journal")

    async def write(number: int) -> None:
        await asyncio.gather(
            *(memory.add(f"u1:s{number}:{i}", {"text": f"turn {i} about hiking"}) for i in range(4))
        )

    try:
        asyncio.run(write(0))
        server.kill()
        asyncio.run(write(1))  # journalled: Redis is away
        assert memory.get_backend_info()["journal_size"] == 4
        server.start()
        asyncio.run(write(2))
        assert asyncio.run(_size_once_replayed(memory, server.url)) == 12
    finally:
        asyncio.run(memory.aclose())


@pytest.mark.redis
@pytest.mark.parametrize("threads", [1, 3])
def test_bursts_in_the_requests_after_an_outage_with_a_full_journal_drop_nothing(
    redis_server_factory: Callable[..., RedisServer], threads: int
) -> None:
    """Redis is back and the journal is full (an outage's writes up to ``max_journal``). Each
    request writes thousands of memories at once, in its own ``asyncio.run``: one after
    another, or on three threads at once (a threaded server).

    - The last probe had found no Redis, so those writers did not wait for the next one, and
      the cap dropped the oldest journalled writes before that probe could answer:
      8,400-10,000 acknowledged writes a request, Redis answering (48,999 of 62,001 in a run
      of six requests). The due probe now starts before a write meets the full journal, and
      no cap applies until it answers.
    - A thread's request that ended cut its recovery short, and the cap came back while the
      other threads wrote on: 2,000-24,000 of 26,000 dropped. The cap stays as the cut found
      it, until the next recovery ends.

    None is dropped, and Redis ends with every write."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url, max_journal=2_000, redis_timeout=1.0)
    written = [0]

    async def burst(count: int, session: str) -> None:
        keys = [f"u{i % 50}:s{session}:{i}" for i in range(count)]
        await asyncio.gather(*(memory.add(k, {"text": f"turn {k} about hiking"}) for k in keys))
        written.append(count)

    def requests(thread: int) -> None:
        for request in range(2):
            asyncio.run(burst(5_000 if threads == 1 else 2_500, f"t{thread}r{request}"))

    try:
        asyncio.run(burst(1, "before"))  # (connected: the outage below is one, not a refusal)
        server.kill()
        asyncio.run(burst(2_000, "outage"))
        assert not asyncio.run(memory.flush())  # a probe found no Redis
        server.start()
        time.sleep(0.25)  # (a probe is due: until then this process knows only the outage)
        if threads == 1:
            requests(0)
        else:
            hung = threads_at_once([functools.partial(requests, t) for t in range(threads)])
            assert not hung
        assert memory.get_backend_info()["journal_dropped"] == 0
        assert asyncio.run(_size_once_replayed(memory, server.url)) == sum(written)
    finally:
        asyncio.run(memory.aclose())


def _in_a_closed_loop(coro: Any) -> None:
    """Run ``coro`` as a sync wrapper does: a new loop, ``run_until_complete``, then ``close``
    (which leaves a task still pending, unlike ``asyncio.run``, which cancels it)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.mark.redis
@pytest.mark.parametrize("runner", ["asyncio.run", "sync wrapper"])
def test_requests_shorter_than_a_timeout_keep_a_stalled_outage_journal_capped(
    redis_server_factory: Callable[..., RedisServer], runner: str
) -> None:
    """Redis stalled for good; each request writes 500 memories at once under a framework's
    request timeout (0.7 s) shorter than ``redis_timeout`` (1 s), so every request ends its
    probe before it can answer. A cut probe keeps the cap lifted, and the journal grew without
    bound (7,500 past a cap of 100 in 10 s: R39). Cut probes that waited a whole timeout with
    no answer bring the cap back, as a failed probe does: what is past it is dropped, counted.

    The sync wrapper's ``close`` leaves the recovery pending (not cancelled: ``_cut_short``
    runs, if ever, when the collector closes it, and by then the next recovery times its own
    probe). Its probe's wait went uncounted, and the journal grew by each request's writes
    without bound (R40: 4,499 past a cap of 100 in 6 s). A recovery found stranded is cut then.
    """
    run: Callable[[Any], None] = asyncio.run if runner == "asyncio.run" else _in_a_closed_loop
    server = redis_server_factory()
    memory = fast_recovery(server.url, max_journal=100, redis_timeout=1.0)
    written = [0]

    async def request(number: int) -> None:
        async def one(i: int) -> None:
            await memory.add(f"r{number}:{i}", {"v": i})
            written[0] += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(500))), 0.7)

    run(memory.add("warm", {"v": 0}))
    try:
        with server.stalled(), warnings.catch_warnings():
            if runner == "sync wrapper":  # (its closed loops leave connections to collect)
                warnings.simplefilter("ignore", ResourceWarning)
            run(memory.add("first", {"v": 1}))  # its whole timeout: degraded
            peak, until = 0, time.monotonic() + 4
            number = 0
            while time.monotonic() < until:
                run(request(number))
                number += 1
                peak = max(peak, memory.get_backend_info()["journal_size"])
            info = memory.get_backend_info()
        assert written[0] > 2_000  # (the requests went on writing)
        assert peak < 100 + 2_000  # the cap, and what about a timeout's requests added
        assert info["journal_dropped"] > written[0] - peak
    finally:
        asyncio.run(memory.aclose())
        # A sync wrapper's closed loops leave their recoveries pending: collected here, so that
        # asyncio's "Task was destroyed" for them is logged in this test, not in a later one
        # that checks for it (test_a_probe_timer_due_while_asyncio_run_closes_...).
        gc.collect()


@pytest.mark.redis
def test_requests_shorter_than_a_timeout_are_served_while_redis_stays_stalled(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Redis stalled for good; each request writes 50 memories one after another within a
    0.2 s budget (``redis_timeout`` 1 s). Each request's first call resumed the probe the last
    request cut, and waited for it up to the timeout: cut in turn, no probe ever failed, and
    no request wrote anything for as long as the stall lasted (R39). Cut probes that waited a
    whole timeout count as a failed one: the next waits for its back-off, and requests write."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, redis_timeout=1.0)
    served = [0, 0]  # requests that wrote all, requests in all

    async def request(number: int) -> None:
        async def work() -> None:
            for i in range(50):
                await memory.add(f"r{number}:{i}", {"v": i})

        served[1] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work(), 0.2)
            served[0] += 1

    asyncio.run(memory.add("warm", {"v": 0}))
    try:
        with server.stalled():
            asyncio.run(memory.add("first", {"v": 1}))  # its whole timeout: degraded
            until, number = time.monotonic() + 3, 0
            while time.monotonic() < until:
                asyncio.run(request(number))
                number += 1
            later = served[0]
            until = time.monotonic() + 3  # (well after the first probes were cut)
            while time.monotonic() < until:
                asyncio.run(request(number))
                number += 1
        assert served[0] - later > 10
        assert served[0] > served[1] / 2
    finally:
        asyncio.run(memory.aclose())


@pytest.mark.redis
@pytest.mark.parametrize("work", ["read", "write", "touch", "forget"])
def test_short_invocations_after_an_outage_replay_its_journal(
    redis_server_factory: Callable[..., RedisServer], work: str
) -> None:
    """A handler that returns at once (one ``get``, ``add``, ``touch`` or ``forget``): each
    ``asyncio.run`` ends by cancelling the recovery its call started before that recovery
    could connect, so no invocation ever replayed, and the writes of the outage, and every
    later one, stayed in this process (300 invocations, 0 replayed). A recovery so cut short
    is resumed by the next call, which waits for it up to ``redis_timeout``. (A touch or a
    forget that finds Redis still away says so: ``BackendUnavailableError``,
    ``IncompleteOperationError``.)"""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)

    async def outage_write(number: int) -> None:
        await memory.add(f"u1:s0:{number}", {"text": f"turn {number} about hiking"})

    async def handler(number: int) -> None:
        if work == "read":
            await memory.get(f"u1:s0:{number}")
        elif work == "write":
            await memory.add(f"u1:s1:{number}", {"text": f"later turn {number}"})
        else:
            with contextlib.suppress(BackendUnavailableError, IncompleteOperationError):
                if work == "touch":
                    await memory.touch(f"u1:s0:{number}", None)
                else:
                    await memory.forget(f"u9:s{number}")  # (a scope with nothing in it)

    try:
        asyncio.run(outage_write(-1))  # (connected: the outage below is one, not a refusal)
        server.kill()
        for number in range(20):
            asyncio.run(outage_write(number))
        assert memory.get_backend_info()["journal_size"] == 20
        server.start()
        invocations = 0
        while memory.get_backend_info()["journal_size"] and invocations < 40:
            time.sleep(0.25)  # (between requests: a probe is due at each, as in production)
            asyncio.run(handler(invocations))
            invocations += 1
        assert memory.get_backend_info()["journal_size"] == 0, f"after {invocations} calls"
        # Another process reads every write of the outage, and those of the invocations.
        want = 21 + (invocations if work == "write" else 0)
        assert asyncio.run(_size_once_replayed(memory, server.url)) == want
    finally:
        asyncio.run(memory.aclose())


def _threads_each_with_a_loop(memory: MemoryPrimitive, threads: int, turns: int) -> list[str]:
    """``threads`` threads, each running ``asyncio.run`` twice over the same memory: writes,
    a search every third turn, a delete every seventh. The errors they raised."""
    errors: list[str] = []

    async def work(thread: int) -> None:
        for i in range(turns):
            await memory.add(f"u{thread % 2}:s{thread}:{i}", {"text": f"turn {i} about hiking"})
            if i % 3 == 0:
                await memory.search("what about hiking", limit=5, scope=f"u{thread % 2}")
            if i % 7 == 6:
                await memory.delete(f"u{thread % 2}:s{thread}:{i - 1}")

    def run(thread: int) -> None:
        for _ in range(2):
            try:
                asyncio.run(work(thread))
            except Exception as exc:  # the outcome is what the test reports
                errors.append(f"{type(exc).__name__}: {exc}")

    threads_at_once([functools.partial(run, t) for t in range(threads)])
    return errors


@pytest.mark.redis
@pytest.mark.parametrize("engine", ["replica", "redis"])
def test_threads_each_with_its_own_event_loop_share_one_memory(
    redis_query_engine: RedisServer, engine: str
) -> None:
    """A threaded web server whose views call ``asyncio.run``: one module-level memory serves
    every thread's loop at once. No call fails, and every write that returned is there."""
    memory = MemoryPrimitive(
        redis_query_engine.url, namespace=namespace(), search_engine=engine, redis_timeout=30
    )
    turns = 120
    assert _threads_each_with_a_loop(memory, 4, turns) == []
    deleted = {i - 1 for i in range(turns) if i % 7 == 6}
    expected = {f"u{t % 2}:s{t}:{i}" for t in range(4) for i in range(turns) if i not in deleted}

    async def stored() -> set[str]:
        keys: set[str] = set()
        for user in ("u0", "u1"):
            page = await memory.list_memories(user, limit=1000)
            assert page.cursor is None
            keys |= {key for key, _ in page.items}
        await memory.aclose()
        return keys

    assert asyncio.run(stored()) == expected


@pytest.mark.redis
def test_threads_journal_one_outage_to_one_file(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Threads, each with its own loop, write through an outage to one durable journal at
    once: each write returns (none waits on another loop's writer for ever), and every one
    reaches Redis once it is back."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url, journal_path=tmp_path / "journal")
    turns = 40

    def phase(number: int) -> None:
        async def work(thread: int) -> None:
            for i in range(turns):
                await memory.add(f"u{thread}:s{number}:{i}", {"text": f"turn {i} about hiking"})

        hung = threads_at_once(
            [functools.partial(asyncio.run, work(t)) for t in range(4)], within=60
        )
        assert not hung, "a write never returned"

    phase(0)
    server.kill()
    phase(1)  # journalled, by four loops at once
    assert memory.get_backend_info()["journal_size"] == 4 * turns
    server.start()
    phase(2)
    assert asyncio.run(_size_once_replayed(memory, server.url, close=True)) == 3 * 4 * turns


@pytest.mark.redis
def test_a_probe_timer_due_while_asyncio_run_closes_its_loop_starts_no_recovery(
    redis_server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The probe timer an outage write arms can fire while ``asyncio.run`` closes its loop
    (the loop runs on until its default executor has shut down, here a thread's last second):
    a recovery started then was abandoned half-way with the loop, and asyncio logged "Task was
    destroyed but it is pending!" and "coroutine ... was never awaited" (a loaded test run
    found it). It starts with the next call instead."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)  # (a probe every 0.05-0.2 s, each waiting up to 0.5 s)

    async def write(number: int, lingering: bool = False) -> None:
        await memory.add(f"u1:s0:{number}", {"text": f"turn {number}"})
        if lingering:  # the loop's close waits for this thread, running its timers meanwhile
            asyncio.get_running_loop().run_in_executor(None, time.sleep, 1.0)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            asyncio.run(write(0))
            with server.stalled():  # (each probe waits its timeout: one under way at the end)
                asyncio.run(write(1, lingering=True))
            # No recovery was started (and left half-way) while the loop closed.
            left = memory._store._recovery
            assert left is None or left.done()
            assert memory.get_backend_info()["journal_size"] == 1
            asyncio.run(write(2))
            assert asyncio.run(_size_once_replayed(memory, server.url)) == 3
        finally:
            asyncio.run(memory.aclose())
        gc.collect()  # (an abandoned recovery is reported when it is collected)
    assert not [w for w in seen if "never awaited" in str(w.message)]
    assert "destroyed but it is pending" not in caplog.text
