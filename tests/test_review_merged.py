"""Review of the merged fixes: where they meet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import fast_recovery, replayed
from test_review_writes import gate, hold_last_replay_batch
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.layout import Layout

#: The value Redis holds, then the write journalled during the outage.
OUTAGE_WRITE = (("u1:s1:k", {"v": "old"}), ("u1:s1:k", {"v": "written in the outage"}))


@pytest.mark.redis
def test_a_recovery_cancelled_in_its_last_batch_is_replayed_later(
    redis_server_factory: Any,
) -> None:
    """The replay's last batch is on its way (the store already serves Redis: ``_leave_degraded``)
    when the event loop ends (``asyncio.run`` cancels the recovery). On the next loop the
    journalled write must still reach Redis: flush must not say True while it is journalled,
    and touch/delete, which wait for it with ``_replay_now``, must not go ahead without it."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)

    async def first() -> None:
        # The last batch is on its way; the loop now ends.
        await hold_last_replay_batch(memory, server, *OUTAGE_WRITE)

    asyncio.run(first())

    async def second() -> None:
        try:
            await asyncio.wait_for(replayed(memory), 10)
            other = fast_recovery(server.url, memory.namespace)
            assert await other.get("u1:s1:k") == {"v": "written in the outage"}
            await other.aclose()
        finally:
            await memory.clear()
            await memory.aclose()

    asyncio.run(second())


@pytest.mark.redis
async def test_a_touch_version_lapses_when_a_process_that_knows_nothing_of_it_writes(
    redis_server: Any,
) -> None:
    """This version touches k: its version goes to ``t``. A process of the version before then
    deletes k with a version older than the touch but newer than the value's (a write of its
    outage, replayed): its DELETE sets ``w`` and leaves ``t`` (it knows nothing of it). k's
    version must be that delete's, not this process's touch: else the copy check judges the
    deleted memory's copy current, and the next outage serves it."""
    memory = fast_recovery(redis_server.url)
    store = memory._store
    remote = store.remote
    assert isinstance(remote, RedisBackend)
    key = "u1:s1:k"
    await memory.add(key, {"v": 1})
    between = store.versions.next()  # an older process's journalled delete: issued meanwhile
    old_version = between[:16] + "deadbeef"  # another process's tag, that time
    assert await memory.touch(key, 600) is True
    base = remote.layout.base(key)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # What the previous version's DELETE does to the versions: the value gone, w set.
        assert await client.delete(remote.layout.value(key)) == 1
        await client.hset(Layout.versions(base), key, old_version)
        assert await remote.current_versions([key]) == [old_version]
        assert not store._ours(old_version)
    finally:
        await client.aclose()
        await memory.clear()
        await memory.aclose()


@pytest.mark.redis
def test_a_recovery_left_on_a_closed_loop_in_its_last_batch_is_replayed_later(
    redis_server_factory: Any,
) -> None:
    """As above, but the loop is closed with the recovery pending (``run_until_complete`` then
    ``close``: nothing cancels it). ``_alive`` says it no longer runs, yet the store is not
    degraded, so nothing started another: the write stayed journalled for good, flush said
    True, and touch/delete went ahead of it."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)

    async def first() -> None:
        await hold_last_replay_batch(memory, server, *OUTAGE_WRITE)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(first())
    loop.close()

    async def second() -> None:
        try:
            assert await memory.touch("u1:s1:k", 600) is True
            await asyncio.wait_for(replayed(memory), 10)
            assert memory.get_backend_info()["journal_size"] == 0
            other = fast_recovery(server.url, memory.namespace)
            assert await other.get("u1:s1:k") == {"v": "written in the outage"}
            assert [ttl is not None async for key, _, ttl in other.items()] == [True]
            await other.aclose()
        finally:
            await memory.clear()
            await memory.aclose()

    asyncio.run(second())


@pytest.mark.redis
@pytest.mark.usefixtures("quick_settle")
async def test_a_touch_overtaken_by_its_own_put_does_not_raise(redis_server: Any) -> None:
    """touch(k) is on its way when this process's add(k) overtakes it: the value's newer
    version makes the touch stale there. That change is this process's own and its call came
    later, so it stands with its own deadline, and the touch reports the memory there instead
    of failing with StaleWriteError (which touch never documents)."""
    memory = fast_recovery(redis_server.url)
    await memory.add("u1:s1:k", {"v": "old"})
    remote = memory._store.remote
    assert isinstance(remote, RedisBackend)
    entered, release = gate(remote, "touch")
    touch = asyncio.create_task(memory.touch("u1:s1:k", 600))
    await entered.wait()
    await memory.add("u1:s1:k", {"v": "new"})  # no ttl: it stands
    release.set()
    try:
        assert await touch is True
        other = fast_recovery(redis_server.url, memory.namespace)
        try:
            assert [(k, v, ttl) async for k, v, ttl in other.items()] == [
                ("u1:s1:k", {"v": "new"}, None)
            ]
        finally:
            await other.aclose()
    finally:
        await memory.clear()
        await memory.aclose()
