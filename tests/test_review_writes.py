"""Writes that meet a ``touch`` or a ``forget``: on their way to Redis, in the replay's last
batch, or in a durable journal across a restart. A write that returns normally must be stored
(a touch included), and nothing deleted, cleared or forgotten may stay.

A call's way to Redis is held at a gate (an ``asyncio.Event``) so that another call overtakes
it deterministically, as a delayed packet on another pooled connection would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest

from conftest import fast_recovery, replayed
from tta_dev_primitives.exceptions import BackendError, BackendUnavailableError
from tta_dev_primitives.stores._hybrid import REPLAY_BATCH
from tta_dev_primitives.stores._redis.backend import RedisBackend

pytestmark = pytest.mark.redis


def gate(obj: Any, name: str, *, after: int = 0) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the next call of ``obj.name`` (past the ``after`` next ones) until ``release`` is
    set; ``entered`` says it is held."""
    entered, release = asyncio.Event(), asyncio.Event()
    real: Callable[..., Awaitable[Any]] = getattr(obj, name)
    used = False
    passed = 0

    async def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal used, passed
        if passed < after:
            passed += 1
        elif not used:
            used = True
            entered.set()
            await release.wait()
        return await real(*args, **kwargs)

    setattr(obj, name, held)
    return entered, release


def redis_of(memory: Any) -> RedisBackend:
    """The memory's Redis backend, to hold its calls at a gate."""
    remote = memory._store.remote
    assert isinstance(remote, RedisBackend)
    return remote


class Seen(NamedTuple):
    """What a fresh process reads of a key: its value, and for each listing of it whether it
    has a deadline."""

    value: Any
    deadlines: list[bool]


async def seen_elsewhere(url: str, memory: Any, key: str = "u1:s1:k") -> Seen:
    other = fast_recovery(url, memory.namespace)
    try:
        value = await other.get(key)
        return Seen(value, [ttl is not None async for k, _, ttl in other.items() if k == key])
    finally:
        await other.aclose()


async def replay_done(flush: Awaitable[Any], memory: Any) -> None:
    """The held flush, then every replay after it (run on the replay's own loop)."""
    await flush
    await replayed(memory)


async def overtaken_in_the_outage(
    memory: Any, server: Any, held: str, call: Callable[[], Awaitable[Any]]
) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """``u1:s1:k`` holds "old"; ``call`` (a memory call reaching the backend's ``held``) is held
    on its way, Redis dies, and add(k, second) is journalled. The held call, and its release."""
    await memory.add("u1:s1:k", {"v": "old"})
    entered, release = gate(redis_of(memory), held)
    first = asyncio.create_task(call())
    await entered.wait()
    server.kill()
    await memory.add("u1:s1:k", {"v": "second"})
    assert memory.get_backend_info()["journal_size"] == 1
    return first, release


async def add_held_while_get_reads_old(memory: Any) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """``u1:s1:k`` holds "old"; add(k, new) is held on its way while get(k) reads Redis's "old".
    The held add, and its release."""
    await memory.add("u1:s1:k", {"v": "old"})
    entered, release = gate(redis_of(memory), "put")
    add = asyncio.create_task(memory.add("u1:s1:k", {"v": "new"}))
    await entered.wait()
    assert await memory.get("u1:s1:k") == {"v": "old"}  # Redis has not got it yet
    return add, release


async def replayed_holds(memory: Any, server: Any, value: Any) -> None:
    """Redis back and the journal replayed, ``u1:s1:k`` holds ``value``; then the memory is
    cleared and closed."""
    server.start()
    await replayed(memory)
    assert await memory.get("u1:s1:k") == value
    await memory.clear()
    await memory.aclose()


async def hold_last_replay_batch(
    memory: Any, server: Any, before: tuple[str, Any], outage: tuple[str, Any]
) -> tuple[asyncio.Task[bool], asyncio.Event]:
    """``before`` written to Redis, Redis killed, ``outage`` journalled, Redis back, and the
    replay held in its last batch (the store already serves Redis, which lacks ``outage``).
    The flush replaying it, and the event that lets the batch go. (A batch of deletes of
    keys never written goes first: a replay hands off only once a batch of it has landed.)"""
    await memory.add(*before)
    server.kill()
    for i in range(REPLAY_BATCH):
        await memory.delete(f"never-written:s1:{i}")
    await memory.add(*outage)
    assert memory.get_backend_info()["journal_size"] == REPLAY_BATCH + 1
    server.start()
    remote = redis_of(memory)
    entered, release = gate(remote, "apply", after=1)
    flush = asyncio.create_task(memory.flush())
    await entered.wait()  # the last batch is on its way; new calls go to Redis
    assert not memory.get_backend_info()["degraded"]
    return flush, release


@pytest.mark.parametrize("read", ["search", "size", "list"])
async def test_a_read_of_many_keys_during_the_last_replay_batch_waits_for_it(
    redis_server_factory: Any, read: str
) -> None:
    """A search, a size or a listing while the replay's last batch is on its way (the store
    serves Redis again, which lacks the batch) waits for the batch to land, as a write does,
    and sees the outage write. It read Redis without it: a LangGraph checkpointer took an
    older checkpoint for a thread's latest and forked the thread, losing acknowledged turns
    (review R23, 15 of 21 runs)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    flush, release = await hold_last_replay_batch(
        memory, server, ("u1:s1:a", {"content": "tea before"}),
        ("u1:s1:k", {"content": "tea in the outage"}),
    )  # fmt: skip

    async def keys() -> Any:
        if read == "search":
            return sorted(hit.key for hit in await memory.search_scored("tea", scope="u1"))
        if read == "size":
            return await memory.size()
        return sorted(key for key, _ in (await memory.list_memories("u1")).items)

    answer = asyncio.create_task(keys())
    await asyncio.sleep(0.3)  # (Redis answers in about a millisecond)
    assert not answer.done()  # it waits for the batch
    release.set()
    assert await answer == (2 if read == "size" else ["u1:s1:a", "u1:s1:k"])
    assert await flush
    await memory.clear()
    await memory.aclose()


async def test_a_put_overtaken_by_a_touch_is_stored(redis_server: Any) -> None:
    """put(k, new) is on its way when touch(k) overtakes it: the put returns normally, so Redis
    must hold the new value (before: the touch's newer version made Redis reject the put as
    stale, the hybrid took it for its own later change, and the old value stayed)."""
    memory = fast_recovery(redis_server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = redis_of(memory)
    entered, release = gate(remote, "put")
    put = asyncio.create_task(memory.add("u1:s1:k", {"v": "new"}))
    await entered.wait()
    assert await memory.touch("u1:s1:k", 600) is True
    release.set()
    await put  # returned normally: stored
    assert (await seen_elsewhere(redis_server.url, memory)).value == {"v": "new"}
    await memory.clear()
    await memory.aclose()


@pytest.mark.usefixtures("quick_settle")
async def test_a_delete_overtaken_by_a_touch_deletes(redis_server: Any) -> None:
    """delete(k) is on its way when touch(k) overtakes it: the delete returns normally, so the
    memory must be gone from Redis (before: it stayed)."""
    memory = fast_recovery(redis_server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = redis_of(memory)
    entered, release = gate(remote, "delete")
    delete = asyncio.create_task(memory.delete("u1:s1:k"))
    await entered.wait()
    await memory.touch("u1:s1:k", 600)
    release.set()
    assert await delete is True
    assert (await seen_elsewhere(redis_server.url, memory)).value is None
    await memory.clear()
    await memory.aclose()


async def test_a_touch_during_the_last_replay_batch_keeps_the_outage_write(
    redis_server_factory: Any,
) -> None:
    """An add journalled during an outage is in the replay's last batch when touch(k) runs
    (the store serves Redis again by then), and Redis came back holding the old value: both
    must take effect, the add's value with the touch's deadline (before: the touch restarted
    the old value's clock, and the add then replaced it with no deadline, or was dropped as
    stale against the touch's version)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    flush, release = await hold_last_replay_batch(
        memory, server, ("u1:s1:k", {"v": "old"}), ("u1:s1:k", {"v": "written in the outage"})
    )
    touch = asyncio.create_task(memory.touch("u1:s1:k", 600))
    for _ in range(50):  # let the touch run as far as it can without the batch
        await asyncio.sleep(0)
    release.set()
    assert await touch is True
    await flush
    await replayed(memory)
    assert await seen_elsewhere(server.url, memory) == (
        {"v": "written in the outage"},
        [True],
    )
    await memory.clear()
    await memory.aclose()


async def test_forget_during_the_last_replay_batch_forgets_the_outage_write(
    redis_server_factory: Any,
) -> None:
    """An add of user u1 journalled during an outage is in the replay's last batch when
    forget("u1") runs: forget returns normally, so no memory of u1 may be left in Redis
    (before: forget listed Redis, which did not hold it yet, and the batch landed after)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    flush, release = await hold_last_replay_batch(
        memory, server, ("u1:s1:a", {"v": "before"}), ("u1:s1:b", {"v": "written in the outage"})
    )
    forget = asyncio.create_task(memory.forget("u1"))
    for _ in range(50):
        await asyncio.sleep(0)
    release.set()
    await forget
    await flush
    await replayed(memory)
    other = fast_recovery(server.url, memory.namespace)
    assert [k for k, _ in (await other.list_memories("u1")).items] == []
    assert await other.get("u1:s1:b") is None
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_touch_as_the_first_call_after_a_restart_keeps_the_durable_journal(
    redis_server_factory: Any, tmp_path: Any
) -> None:
    """A process journals add(k, new) durably during an outage and ends; Redis comes back
    holding the old value. The next process on the path calls touch(k) first: the journalled
    add must reach Redis, with the touch's deadline (before: touch ran before the file was
    loaded and restarted the old value's clock; the replayed add then replaced it with no
    deadline, or was dropped as stale against the touch's version)."""
    server = redis_server_factory(appendonly=True)
    journal = tmp_path / "memory.journal"
    memory = fast_recovery(server.url, journal_path=journal)
    await memory.add("u1:s1:k", {"v": "old"})
    server.kill()
    await memory.add("u1:s1:k", {"v": "written in the outage"})
    await memory.aclose()  # the write stays in the file
    server.start()
    again = fast_recovery(server.url, memory.namespace, journal_path=journal)
    assert await again.touch("u1:s1:k", 600) is True
    await replayed(again)
    assert await seen_elsewhere(server.url, memory) == (
        {"v": "written in the outage"},
        [True],
    )
    await again.clear()
    await again.aclose()


@pytest.mark.parametrize("op", ["add", "delete", "clear"])
async def test_another_process_s_touch_does_not_undo_a_replayed_outage_write(
    redis_server_factory: Any, tmp_path: Any, op: str
) -> None:
    """A process journals an add, a delete or a clear durably during an outage and ends; Redis
    comes back holding the old value, and another process touches it (a touch changes no
    value). The next process on the path replays the write: it must take effect (before: the
    touch's version made Redis reject the replayed write as stale, so the add was lost and
    the deleted or cleared memory stayed)."""
    server = redis_server_factory(appendonly=True)
    journal = tmp_path / "memory.journal"
    memory = fast_recovery(server.url, journal_path=journal)
    await memory.add("u1:s1:k", {"v": "old"})
    server.kill()
    if op == "add":
        await memory.add("u1:s1:k", {"v": "written in the outage"})
    elif op == "delete":
        await memory.delete("u1:s1:k")
    else:
        await memory.clear()
    await memory.aclose()  # the write stays in the file
    server.start()
    other = fast_recovery(server.url, memory.namespace)
    assert await other.touch("u1:s1:k", 600) is True
    again = fast_recovery(server.url, memory.namespace, journal_path=journal)
    await replayed(again)
    expected = {"v": "written in the outage"} if op == "add" else None
    assert await other.get("u1:s1:k") == expected
    assert again.get_backend_info()["stale_writes"] == 0
    await again.clear()
    await again.aclose()
    await other.aclose()


async def test_delete_during_the_last_replay_batch_says_the_memory_was_there(
    redis_server_factory: Any,
) -> None:
    """An add journalled during an outage is in the replay's last batch when delete(k) runs:
    the memory was there, so delete returns True (before: it asked Redis, which did not hold
    it yet, and returned False), and it stays deleted."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    flush, release = await hold_last_replay_batch(
        memory, server, ("warm", {"v": 0}), ("u1:s1:k", {"v": "written in the outage"})
    )
    delete = asyncio.create_task(memory.delete("u1:s1:k"))
    for _ in range(50):
        await asyncio.sleep(0)
    release.set()
    assert await delete is True
    await flush
    await replayed(memory)
    assert (await seen_elsewhere(server.url, memory)).value is None
    await memory.clear()
    await memory.aclose()


async def test_an_add_cancelled_on_its_way_is_not_served_in_the_next_outage(
    redis_server_factory: Any,
) -> None:
    """An add cancelled by the caller's timeout while Redis is stalled raises, and Redis never
    stores it (killed while stalled). In the outage that follows, the in-process copy must not
    serve that value, which Redis never held (before: it did, until Redis came back with the
    old value; a refused add already drops its copy for the same reason)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url, redis_timeout=60.0)
    await memory.add("u1:s1:k", {"v": "old"})
    with server.stalled():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(memory.add("u1:s1:k", {"v": "never stored"}), 0.2)
        server.kill()  # still stopped: the add it was sent never runs
    assert await memory.get("u1:s1:k") != {"v": "never stored"}
    assert memory.get_backend_info()["degraded"]
    await replayed_holds(memory, server, {"v": "old"})


async def test_a_get_racing_an_add_keeps_the_add_s_copy_for_the_outage(
    redis_server_factory: Any,
) -> None:
    """add(k, new) is on its way when get(k) reads Redis's older value. The get must not drop
    the add's in-process copy as outdated: the add then meets the outage and is journalled, and
    reads during that outage must find it (before: a miss until the replay)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    add, release = await add_held_while_get_reads_old(memory)
    server.kill()
    release.set()
    await add  # journalled: returned normally
    assert memory.get_backend_info()["degraded"]
    assert await memory.get("u1:s1:k") == {"v": "new"}
    assert [r["v"] for r in await memory.search("new")] == ["new"]
    await replayed_holds(memory, server, {"v": "new"})


async def test_a_cancelled_add_leaves_a_later_journalled_add_s_copy(
    redis_server_factory: Any,
) -> None:
    """add(k, first) is held on its way; Redis dies and add(k, second) is journalled; then the
    first is cancelled. Its cancellation must not drop the in-process copy, which now holds the
    second add's value: the outage still serves it (before: a miss until the replay)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    first, _release = await overtaken_in_the_outage(
        memory, server, "put", lambda: memory.add("u1:s1:k", {"v": "first"})
    )
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await memory.get("u1:s1:k") == {"v": "second"}
    await replayed_holds(memory, server, {"v": "second"})


async def test_a_cancelled_add_leaves_a_later_live_add_s_copy(redis_server: Any) -> None:
    """Two adds of one key on their way, the later one first to land; the earlier is then
    cancelled. The in-process copy must keep the later value, which Redis holds: an outage right
    after still serves it (before: the cancellation dropped it)."""
    memory = fast_recovery(redis_server.url)
    remote = redis_of(memory)
    await memory.add("u1:s1:k", {"v": "old"})
    entered, _release = gate(remote, "put")
    first = asyncio.create_task(memory.add("u1:s1:k", {"v": "first"}))
    await entered.wait()
    await memory.add("u1:s1:k", {"v": "second"})
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    local = memory._store.local
    assert await local.get("u1:s1:k") is not None
    assert await memory.get("u1:s1:k") == {"v": "second"}
    await memory.clear()
    await memory.aclose()


class LoopThread:
    """Another event loop, running in its own thread (as a sync adapter's portal does).
    ``pause`` stops it (its ``run_forever`` returns, as ``run_until_complete`` would),
    ``resume`` runs it again."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.resume()

    def resume(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def close(self) -> None:
        self.pause()
        self.loop.close()


@contextmanager
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """Another event loop, running in its own thread, closed after."""
    running = LoopThread()
    try:
        yield running.loop
    finally:
        running.close()


def on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def test_a_touch_waits_for_a_last_replay_batch_on_another_thread_s_loop(
    redis_server_factory: Any,
) -> None:
    """As above, but the replay runs on another thread's loop (the recovery was started by a
    call made there). The touch must still wait for the batch holding the key's outage write:
    else it restarts the old value's clock and the replayed add drops the deadline."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    with loop_in_thread() as elsewhere:
        flush, release = await on(elsewhere, hold_last_replay_batch(
            memory, server, ("u1:s1:k", {"v": "old"}), ("u1:s1:k", {"v": "written in the outage"})
        ))  # fmt: skip
        touch = asyncio.create_task(memory.touch("u1:s1:k", 600))
        # Waiting for the batch (before: it went straight to Redis and returned; a slow
        # machine only makes this weaker, never wrong).
        await asyncio.wait([touch], timeout=1.0)
        assert not touch.done()
        elsewhere.call_soon_threadsafe(release.set)
        assert await touch is True

        await on(elsewhere, replay_done(flush, memory))
        assert await seen_elsewhere(server.url, memory) == (
            {"v": "written in the outage"},
            [True],
        )
        await on(elsewhere, memory.aclose())


async def test_a_clear_in_the_last_replay_batch_hides_what_it_cleared(
    redis_server_factory: Any,
) -> None:
    """A clear journalled during an outage is in the replay's last batch when get(k) and
    touch(k) run (the store serves Redis again, which still holds k). The clear returned, so
    neither may find k (before: the get read Redis's value the clear removed, and the touch
    said the memory was there). The clear is made while the replay's first batch is on its
    way: a replay hands off only once a batch of it has landed, and a clear journalled in the
    outage is the head of the journal, so in the first batch."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    server.kill()
    for i in range(REPLAY_BATCH):
        await memory.delete(f"never-written:s1:{i}")
    server.start()
    remote = redis_of(memory)
    first, go_on = gate(remote, "apply")
    flush = asyncio.create_task(memory.flush())
    await first.wait()  # the first batch is on its way: the store is still in its outage
    assert memory.get_backend_info()["degraded"]
    await memory.clear()  # journalled
    entered, release = gate(remote, "apply")
    go_on.set()
    await entered.wait()  # the last batch (the clear) is on its way; new calls go to Redis
    assert not memory.get_backend_info()["degraded"]
    assert await memory.get("u1:s1:k") is None
    touch = asyncio.create_task(memory.touch("u1:s1:k", 600))
    for _ in range(50):  # let the touch run as far as it can without the batch
        await asyncio.sleep(0)
    release.set()
    assert await touch is False
    await flush
    await replayed(memory)
    assert await memory.get("u1:s1:k") is None
    await memory.aclose()


async def test_a_touch_is_refused_while_another_stopped_loop_holds_the_last_batch(
    redis_server_factory: Any,
) -> None:
    """As above, but the other thread's loop stops (``run_until_complete`` returned) with the
    replay in its last batch. The touch cannot wait for it, so it must raise, leaving the expiry
    unchanged (before: it restarted the old value's clock and returned True, and the replayed
    add, once that loop ran again, left the memory with no deadline)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    elsewhere = LoopThread()
    flush, release = await on(elsewhere.loop, hold_last_replay_batch(
        memory, server, ("u1:s1:k", {"v": "old"}), ("u1:s1:k", {"v": "written in the outage"})
    ))  # fmt: skip
    elsewhere.pause()
    try:
        with pytest.raises(BackendUnavailableError):
            await memory.touch("u1:s1:k", 600)
    finally:
        elsewhere.resume()
    try:
        elsewhere.loop.call_soon_threadsafe(release.set)
        await on(elsewhere.loop, replay_done(flush, memory))
        assert await memory.touch("u1:s1:k", 600) is True
        assert await seen_elsewhere(server.url, memory) == (
            {"v": "written in the outage"},
            [True],
        )
        await on(elsewhere.loop, memory.aclose())
    finally:
        elsewhere.close()


async def test_an_add_journalled_after_a_later_add_of_the_key_does_not_replace_it(
    redis_server_factory: Any,
) -> None:
    """add(k, first) is held on its way; Redis dies and add(k, second) is journalled; then the
    first fails too and is journalled after it. The second add returned normally and is the
    newer: the replay must store it (before: the first replaced it in the journal, and Redis
    ended with the older value while the in-process copy held the newer one)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    first, release = await overtaken_in_the_outage(
        memory, server, "put", lambda: memory.add("u1:s1:k", {"v": "first"})
    )
    release.set()
    await first
    assert await memory.get("u1:s1:k") == {"v": "second"}  # the outage serves the newer
    server.start()
    await replayed(memory)
    got = (await seen_elsewhere(server.url, memory)).value
    assert await memory.get("u1:s1:k") == {"v": "second"}
    await memory.clear()
    await memory.aclose()
    assert got == {"v": "second"}


@pytest.mark.usefixtures("quick_settle")
async def test_a_clear_journalled_after_a_later_add_does_not_remove_it(
    redis_server_factory: Any,
) -> None:
    """clear() is held on its way; Redis dies and add(k, second) is journalled; then the clear
    fails too and is journalled after it. The add came after the clear: the replay must store
    it (before: the clear wiped it from the journal, and it never reached Redis)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    first, release = await overtaken_in_the_outage(memory, server, "clear", lambda: memory.clear())
    release.set()
    await first
    assert await memory.get("u1:s1:k") == {"v": "second"}
    server.start()
    await replayed(memory)
    got = (await seen_elsewhere(server.url, memory)).value
    await memory.clear()
    await memory.aclose()
    assert got == {"v": "second"}


async def test_an_add_redis_answers_with_an_error_is_not_served_in_the_next_outage(
    redis_server_factory: Any,
) -> None:
    """Redis answers add(k, new) with an error that is neither an outage nor a refusal (a
    script or protocol error: ``BackendError``). The add raises, and Redis never stored it: the
    outage that follows must not serve it from the in-process copy (before: it did, while a
    ``BackendRefusedError`` already dropped the copy)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = redis_of(memory)
    real = remote.put

    async def failing(*args: Any, **kwargs: Any) -> Any:
        remote.put = real  # type: ignore[method-assign]
        raise BackendError("Redis error: ERR something Redis could not do with this write")

    remote.put = failing  # type: ignore[method-assign]
    with pytest.raises(BackendError):
        await memory.add("u1:s1:k", {"v": "never stored"})
    server.kill()
    assert await memory.get("u1:s1:k") != {"v": "never stored"}
    assert memory.get_backend_info()["degraded"]
    await replayed_holds(memory, server, {"v": "old"})


async def test_an_add_made_while_a_get_checks_copies_keeps_its_copy(
    redis_server_factory: Any,
) -> None:
    """get(k) reads Redis's value, then runs the due copy check, held on its way; add(k, new)
    is made and stored meanwhile. The get must judge the copy by what it held when Redis
    answered, not drop the add's newer copy as outdated: an outage right after must serve it
    (before: a miss until the replay)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    store = memory._store
    remote = store.remote
    assert isinstance(remote, RedisBackend)
    entered, release = gate(remote, "current_versions")
    store.copies._next = 0.0  # a check is due: the get runs it
    get = asyncio.create_task(memory.get("u1:s1:k"))
    await entered.wait()
    await memory.add("u1:s1:k", {"v": "new"})
    release.set()
    assert await get == {"v": "old"}  # it began before the add
    server.kill()
    assert await memory.get("u1:s1:k") == {"v": "new"}
    assert memory.get_backend_info()["degraded"]
    await replayed_holds(memory, server, {"v": "new"})


async def test_a_delete_says_the_memory_was_there_while_a_stopped_loop_holds_the_last_batch(
    redis_server_factory: Any,
) -> None:
    """As above, with delete(k): it cannot wait for the batch, but the memory exists (its add
    was journalled during the outage), so it must return True and the memory must be gone once
    the batch lands (before: Redis, which lacked the add, made it return False)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    elsewhere = LoopThread()
    flush, release = await on(elsewhere.loop, hold_last_replay_batch(
        memory, server, ("u1:s1:other", {"v": "old"}), ("u1:s1:k", {"v": "written in the outage"})
    ))  # fmt: skip
    elsewhere.pause()
    try:
        assert await memory.delete("u1:s1:k") is True
    finally:
        elsewhere.resume()
    try:
        elsewhere.loop.call_soon_threadsafe(release.set)
        await on(elsewhere.loop, replay_done(flush, memory))
        assert (await seen_elsewhere(server.url, memory)).value is None
        await on(elsewhere.loop, memory.aclose())
    finally:
        elsewhere.close()


async def test_a_newer_value_seen_while_an_add_lands_is_not_undercut_in_the_next_outage(
    redis_server_factory: Any,
) -> None:
    """add(k, mine) has landed in Redis but not yet returned when another process overwrites
    k and this process's get reads that newer value. Once the add returns, the in-process copy
    must not serve "mine" in an outage: this process has seen newer (before: the get's mark
    was used up while the add was on its way, and the copy stayed)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = redis_of(memory)
    landed, release = asyncio.Event(), asyncio.Event()
    real = remote.put

    async def held(*args: Any, **kwargs: Any) -> Any:
        result = await real(*args, **kwargs)
        landed.set()
        await release.wait()  # stored in Redis; the reply not yet back
        return result

    remote.put = held  # type: ignore[method-assign]
    add = asyncio.create_task(memory.add("u1:s1:k", {"v": "mine"}))
    await landed.wait()
    remote.put = real  # type: ignore[method-assign]
    other = fast_recovery(server.url, memory.namespace)
    await other.add("u1:s1:k", {"v": "theirs"})
    await other.aclose()
    assert await memory.get("u1:s1:k") == {"v": "theirs"}
    release.set()
    await add
    server.kill()
    assert await memory.get("u1:s1:k") in (None, {"v": "theirs"})  # a miss, or the newer
    await replayed_holds(memory, server, {"v": "theirs"})


async def test_a_get_reading_the_older_value_while_an_add_lands_keeps_the_add_s_copy(
    redis_server_factory: Any,
) -> None:
    """get(k) reads Redis's older value while add(k, new) is on its way; the add then lands
    and returns normally, and Redis dies. The outage must still serve the add's value, which
    Redis holds and this process wrote last (before: the get's mark, kept until the add was
    done, then dropped the add's copy: a miss until the replay)."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    add, release = await add_held_while_get_reads_old(memory)
    release.set()
    await add  # stored in Redis
    assert not memory.get_backend_info()["degraded"]
    server.kill()
    assert await memory.get("u1:s1:k") == {"v": "new"}
    await replayed_holds(memory, server, {"v": "new"})


async def test_marks_of_a_key_on_its_way_do_not_pile_up(redis_server: Any) -> None:
    """While add(k) is on its way every get reads Redis's older value and marks k; the marks
    wait for the add. One is enough: they must not grow with the reads (before: one per read,
    each re-queued by every call, without bound while writes of k keep it on its way)."""
    memory = fast_recovery(redis_server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = redis_of(memory)
    entered, release = gate(remote, "put")
    add = asyncio.create_task(memory.add("u1:s1:k", {"v": "new"}))
    await entered.wait()
    for _ in range(50):
        assert await memory.get("u1:s1:k") == {"v": "old"}
    assert len(memory._store._outdated._changes) <= 1
    release.set()
    await add
    assert await memory.get("u1:s1:k") == {"v": "new"}
    await memory.clear()
    await memory.aclose()
