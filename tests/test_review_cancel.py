"""aclose() and the background tasks it ends: the recovery (HybridStore) and the backfill
(QueryEngine). A caller's cancellation is not swallowed by the task's own, and a task left
pending on a closed loop neither counts as running nor makes aclose() fail."""

from __future__ import annotations

import asyncio
from typing import Any

from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._hybrid import HybridStore
from tta_dev_primitives.stores._inprocess import InProcessBackend
from tta_dev_primitives.stores._redis.query_engine import QueryEngine


class Stalling(InProcessBackend):
    """A remote that is down, then stalls (no answer to the recovery's probe); cancelled, it
    takes a few loop turns to let go of its connection, as redis-py does."""

    kind = "stalling"

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.stalls = True
        self.probing = asyncio.Event()

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        if not self.up:
            raise BackendUnavailableError("down")
        await super().put(key, payload, ttl, version=version)

    async def probe(self) -> None:
        if not self.stalls:
            return
        self.probing.set()
        try:
            await asyncio.Event().wait()  # no answer
        except asyncio.CancelledError:
            for _ in range(3):
                await asyncio.sleep(0)  # closing the connection
            raise


async def test_cancelling_aclose_while_it_waits_for_the_recovery_is_not_swallowed() -> None:
    remote = Stalling()
    store = HybridStore(InProcessBackend(), remote, backoff=Backoff(60, 60))
    await store.put("a", "1", None)  # journalled: the remote is down
    flushing = asyncio.create_task(store.flush())  # starts the recovery, which stalls
    await remote.probing.wait()
    flushing.cancel()  # the recovery goes on (shielded)
    await asyncio.gather(flushing, return_exceptions=True)

    closer = asyncio.create_task(store.aclose())
    await asyncio.sleep(0)  # aclose cancelled the recovery and waits for it to end
    closer.cancel()  # and now its caller cancels it (a shutdown, a timeout)
    (outcome,) = await asyncio.gather(closer, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), outcome


def test_a_recovery_left_on_a_closed_loop_does_not_block_recovery_forever() -> None:
    """The background replay started on a loop that was then closed (a thread's own loop, run
    with run_until_complete and closed) can never finish. Another loop must start its own once
    the remote is back, not count the dead one as running: else nothing is ever replayed and
    aclose() fails."""
    remote = Stalling()
    store = HybridStore(InProcessBackend(), remote, backoff=Backoff(60, 60))
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(store.put("a", "1", None))  # journalled: the remote is down
        flushing = first.create_task(store.flush())  # starts the recovery: it stalls
        first.run_until_complete(remote.probing.wait())
    finally:
        first.close()  # with the recovery (and the flush waiting on it) still pending
    del flushing

    async def later() -> tuple[bool, bool]:
        remote.up, remote.stalls = True, False
        replayed = await store.flush()
        await store.aclose()
        return replayed.value, await remote.get("a") == "1"

    assert asyncio.run(later()) == (True, True)


def _engine_with_backfill(backfill: Any) -> QueryEngine:
    """A query engine whose background backfill is ``backfill`` (a task)."""
    engine = QueryEngine("review", "redis", Indexing())
    engine._backfill = backfill
    return engine


async def _slow_to_cancel() -> None:
    try:
        await asyncio.Event().wait()  # a backfill page waiting on Redis
    except asyncio.CancelledError:
        for _ in range(3):
            await asyncio.sleep(0)  # letting go of its connection
        raise


def _left_on_a_closed_loop() -> asyncio.Task[None]:
    """A backfill started on a loop that was then closed with it pending: it never finishes."""
    first = asyncio.new_event_loop()
    try:
        task = first.create_task(_slow_to_cancel())
        first.run_until_complete(asyncio.sleep(0))
    finally:
        first.close()
    return task


async def test_cancelling_the_query_engines_aclose_is_not_swallowed() -> None:
    """The same for the Redis Query Engine's backfill: aclose() cancelled while it waits for
    the backfill to end must end cancelled."""
    backfill = asyncio.create_task(_slow_to_cancel())
    await asyncio.sleep(0)
    engine = _engine_with_backfill(backfill)
    closer = asyncio.create_task(engine.aclose())
    await asyncio.sleep(0)  # aclose cancelled the backfill and waits for it
    closer.cancel()
    (outcome,) = await asyncio.gather(closer, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), outcome
    await asyncio.wait([backfill])  # it was cancelled all the same, and ends in its own time
    assert backfill.cancelled()


def test_the_query_engines_aclose_with_a_backfill_left_on_a_closed_loop() -> None:
    """A backfill left pending on a loop since closed: aclose() on another loop must close,
    not fail touching the closed loop."""
    backfill = _left_on_a_closed_loop()
    engine = _engine_with_backfill(backfill)
    asyncio.run(engine.aclose())
    del backfill


def test_a_backfill_left_on_a_closed_loop_is_started_again() -> None:
    """A backfill left pending on a loop since closed never finishes. The next search that
    prepares the engine must start one again, not take the dead one for running: else the
    index stays "building" and searches never use the engine."""
    dead = _left_on_a_closed_loop()
    engine = _engine_with_backfill(dead)
    engine.state, engine.dims = "building", 4
    pages: list[int | None] = []

    async def call(_: Any) -> list[str]:
        return ["0"]  # no partition is backfilled yet

    async def backfill(most: int | None) -> bool:
        pages.append(most)
        return most is None  # the first page leaves more; the rest, in the background, ends

    async def prepare() -> None:
        await engine.prepare(call, ["p0"], False, backfill, 4, searching=True)
        await engine.wait_backfill()

    asyncio.run(prepare())
    assert pages == [1, None]
    del dead
