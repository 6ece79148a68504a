"""production.md, "Memory limits": "If Redis fills while an outage journal is being replayed,
the replay stops and keeps the journal, and new adds raise until the replay succeeds"."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import (
    Factory,
    eventually,
    fast_recovery,
    fill_until_refused,
    namespace,
    replayed,
)
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendRefusedError

pytestmark = pytest.mark.redis


async def test_a_replay_into_a_full_redis_keeps_the_journal_and_refuses_new_adds(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory(extra=("--maxmemory", "4mb", "--maxmemory-policy", "noeviction"))
    memory = fast_recovery(server.url)
    await memory.add("warm", {"v": 0})
    server.kill()
    pad = "x" * 2000
    for i in range(3000):  # about 6 MB: more than the 4 MB Redis will take
        await memory.add(f"u1:s1:{i}", {"content": f"note {i}", "pad": pad})
    server.start()

    async def stuck() -> bool:
        await memory.flush()
        info = memory.get_backend_info()
        return 0 < info["journal_size"] < 3000  # replayed in part, then refused

    await eventually(stuck, within=15)
    assert not await memory.flush()  # the replay does not get further while Redis is full
    info = memory.get_backend_info()
    assert (info["dead_letters"], info["journal_dropped"]) == (0, 0)  # kept, not dropped
    assert "full" in info["last_error"]  # why the replay stopped, not the outage before it
    with pytest.raises(BackendRefusedError, match="full"):
        await memory.add("u1:s1:new", {"content": "while the replay is stuck"})
    assert await memory.get("u1:s1:2999") == {"content": "note 2999", "pad": pad}

    admin = aioredis.Redis(port=server.port)
    await admin.config_set("maxmemory", "0")  # room again: the replay finishes
    await admin.aclose()

    await replayed(memory, within=15)
    reader = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await reader.size() == 3000  # every outage write ("warm" went with the restart)
    assert await reader.get("u1:s1:new") is None  # the refused add left nothing
    await reader.aclose()
    await memory.add("u1:s1:new", {"content": "now it fits"})
    await memory.clear()
    await memory.aclose()


async def test_writes_a_full_redis_refused_at_their_replay_are_reported_unsent_not_in_doubt(
    redis_server_factory: Factory,
) -> None:
    """Closed while the replay is refused (full, noeviction): the writes Redis refused were
    answered, so ``UnsentWritesError`` counts them as unsent (lost with the store), not as
    "may or may not be stored" (a review: 200 of 300 were, and none of those was stored);
    any Redis took before it filled left the journal as replayed."""
    from tta_dev_primitives.exceptions import UnsentWritesError

    server = redis_server_factory(extra=("--maxmemory", "4mb", "--maxmemory-policy", "noeviction"))
    # Probed rarely: no replay is on its way when the store closes (that one is in doubt).
    memory = fast_recovery(server.url, recovery_interval=60, max_recovery_interval=60)
    await fill_until_refused(memory, "fill:s0:")
    with server.stalled():
        for i in range(300):
            await memory.add(f"u1:s1:{i}", {"content": f"outage write {i}", "pad": "y" * 200})
    assert memory.get_backend_info()["journal_size"] == 300
    for _ in range(2):  # refused twice: a second run must not make the first's answer a doubt
        assert not await memory.flush()
    assert "full" in memory.get_backend_info()["last_error"]
    with pytest.raises(UnsentWritesError) as closed:
        await memory.aclose()
    reader = MemoryPrimitive(server.url, namespace=memory.namespace)
    stored = sum([await reader.get(f"u1:s1:{i}") is not None for i in range(300)])
    await reader.aclose()
    assert (closed.value.unsent, closed.value.unconfirmed) == (300 - stored, 0), str(closed.value)


async def test_a_stale_write_before_a_full_redis_s_refusal_in_one_chunk_is_still_reported(
    redis_server_factory: Factory,
) -> None:
    """A replayed chunk whose first write loses to a newer one (another process wrote the key
    since) and whose rest Redis refuses as full: the stale write is still reported and its
    copy dropped, so a later outage does not serve the older value (review R16: it did)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, recovery_interval=60, max_recovery_interval=60)
    await memory.add("u1:s1:k0", {"v": "warm"})
    with server.stalled():
        await memory.add("u1:s1:k1", {"v": "old"})
        for i in range(2, 6):
            await memory.add(f"u1:s1:k{i}", {"v": i})
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    await other.add("u1:s1:k1", {"v": "new"})
    await other.aclose()
    admin = aioredis.Redis(port=server.port)
    await admin.config_set("maxmemory-policy", "noeviction")
    await admin.config_set("maxmemory", "1")  # every write refused: full
    assert not await memory.flush()
    assert "full" in memory.get_backend_info()["last_error"]
    assert memory.get_backend_info()["stale_writes"] == 1
    await admin.config_set("maxmemory", "0")
    await admin.aclose()
    await replayed(memory)
    with server.stalled():
        assert await memory.get("u1:s1:k1") is None  # not the older value
    await memory.aclose()


async def test_writes_an_acl_would_stop_part_way_are_refused_before_any_change(
    redis_server_factory: Factory,
) -> None:
    """A user without one command a write script runs (here +zrem): Redis checks an ACL at
    each command, so the script used to stop after it had set the value, and a fresh process
    read writes reported as refused (review R16). The scripts now check the user's rights
    first: the add and the replay are refused whole, reported unsent, and nothing is there."""
    from tta_dev_primitives.exceptions import UnsentWritesError

    server = redis_server_factory()
    admin = aioredis.Redis(port=server.port)
    await admin.execute_command("ACL", "SETUSER", "nozrem", "on", ">pw", "~*", "+@all", "-zrem")
    url = f"redis://nozrem:pw@127.0.0.1:{server.port}/0"
    memory = fast_recovery(url, recovery_interval=60, max_recovery_interval=60)
    with pytest.raises(BackendRefusedError) as refused:
        await memory.add("u1:s1:direct", {"v": -1})
    assert "'zrem'" in str(refused.value)
    assert str(refused.value).endswith("nothing was stored"), str(refused.value)
    with server.stalled():
        for i in range(5):
            await memory.add(f"u1:s1:k{i}", {"v": i})
    with pytest.raises(UnsentWritesError) as closed:
        await memory.aclose()  # replays: refused before any change
    assert (closed.value.unsent, closed.value.unconfirmed) == (5, 0), str(closed.value)
    assert await admin.keys("*") == []  # not one key: no value, no feed, no facts
    await admin.aclose()


async def test_a_clear_or_forget_an_acl_would_stop_part_way_changes_nothing(
    redis_server_factory: Factory,
) -> None:
    """Without +zrem, forget wrote its mark (making older writes of the scope stale) and then
    raised "nothing was stored"; clear deleted a value, then stopped, leaving size counting
    it (review R20). Every write script now checks the user's rights first."""
    server = redis_server_factory()
    admin = aioredis.Redis(port=server.port)
    await admin.execute_command("ACL", "SETUSER", "nozrem", "on", ">pw", "~*", "+@all", "-zrem")
    owner = MemoryPrimitive(server.url, namespace="acl")
    for key in ("u1:s1:a", "u2:s1:a", "u2:s1:b"):
        await owner.add(key, {"content": key})
    before = {key: await admin.dump(key) for key in await admin.keys("*")}
    memory = MemoryPrimitive(f"redis://nozrem:pw@127.0.0.1:{server.port}/0", namespace="acl")
    for call in (lambda: memory.forget("u2"), memory.clear):
        with pytest.raises(BackendRefusedError, match="before any change") as refused:
            await call()
        assert str(refused.value).endswith("nothing was stored"), str(refused.value)
        assert {key: await admin.dump(key) for key in await admin.keys("*")} == before
    assert await owner.size() == 3
    await memory.aclose()
    await owner.aclose()
    await admin.aclose()


async def test_a_refusal_redis_makes_inside_a_script_does_not_say_nothing_was_stored(
    redis_server_factory: Factory,
) -> None:
    """A refusal Redis itself makes inside a script (here a key pattern that leaves the
    memories' values read-only: the rights check asks about the partition's own keys only)
    may in general come after some writes: the error says how to recover instead of
    claiming nothing was stored. (A missing command, read or write, is refused before any
    change: ``test_a_user_without_a_read_command_is_refused_before_any_change``.)"""
    server = redis_server_factory()
    admin = aioredis.Redis(port=server.port)
    await admin.execute_command(
        "ACL", "SETUSER", "notype", "on", ">pw", "+@all",
        "%RW~tta:memory:{*}:[^v]*", "%R~tta:memory:{*}:v:*",
    )  # fmt: skip
    await admin.aclose()
    memory = MemoryPrimitive(f"redis://notype:pw@127.0.0.1:{server.port}/0")
    with pytest.raises(BackendRefusedError) as refused:
        await memory.add("u1:s1:a", {"v": 1})
    message = str(refused.value)
    assert "NOPERM" in message
    assert "nothing was stored" not in message
    assert "write it again" in message
    await memory.aclose()


@pytest.mark.parametrize("command", ["type", "exists", "time"])
async def test_a_user_without_a_read_command_is_refused_before_any_change(
    redis_server_factory: Factory, command: str
) -> None:
    """Review R21: the rights check asked about the write commands only, so a user without
    +exists had a clear delete one memory and stop. Every command is checked now: clear and
    add are refused whole, and say nothing was stored."""
    server = redis_server_factory()
    memory = MemoryPrimitive(server.url)
    for i in range(3):
        await memory.add(f"u1:s1:{i}", {"v": i})
    admin = aioredis.Redis(port=server.port)
    await admin.execute_command(
        "ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@all", f"-{command}"
    )
    before = {key: await admin.dump(key) for key in await admin.keys("*")}
    user = MemoryPrimitive(f"redis://reader:pw@127.0.0.1:{server.port}/0")
    for call in (user.clear(), user.add("u1:s1:new", {"v": 9})):
        with pytest.raises(BackendRefusedError) as refused:
            await call
        assert "nothing was stored" in str(refused.value)
    assert before == {key: await admin.dump(key) for key in await admin.keys("*")}
    assert await memory.size() == 3
    await admin.aclose()
    await user.aclose()
    await memory.clear()
    await memory.aclose()


async def test_a_replay_redis_refused_in_part_reports_each_write_s_fate(
    redis_server_factory: Factory,
) -> None:
    """A replayed pipeline whose writes to one segment are refused before any change (its feed
    holds another type) and whose others Redis applied: the applied ones leave the journal and
    the refused ones are counted unsent. Every write of the chunk used to count as "may or
    may not be stored" (review R20), the ones Redis had stored too."""
    from tta_dev_primitives.exceptions import UnsentWritesError

    server = redis_server_factory()
    ns = namespace()
    memory = fast_recovery(server.url, ns, recovery_interval=60, max_recovery_interval=60)
    await memory.add("u1:s1:warm", {"v": "warm"})
    admin = aioredis.Redis(port=server.port)
    await admin.set(f"{ns}:{{{ns}#0}}:r:u2", "garbage")  # u2's feed: every u2 write refused
    keys = ["u1:s1:a", "u2:s1:a", "u1:s1:b", "u2:s1:b", "u1:s1:c"]
    with server.stalled():
        for key in keys:
            await memory.add(key, {"content": key})
    with pytest.raises(UnsentWritesError) as closed:
        await memory.aclose()  # replays: u1's applied, u2's refused
    assert (closed.value.unsent, closed.value.unconfirmed) == (2, 0), str(closed.value)
    await admin.delete(f"{ns}:{{{ns}#0}}:r:u2")
    await admin.aclose()
    reader = MemoryPrimitive(server.url, namespace=ns)
    assert {key: await reader.get(key) for key in keys} == {
        key: {"content": key} if key.startswith("u1") else None for key in keys
    }
    await reader.clear()
    await reader.aclose()


async def test_a_cluster_replay_refused_before_any_change_reports_the_writes_unsent(
    redis_cluster: Any,
) -> None:
    """On a cluster each partition's writes go on their own; a user without +zrem has every
    one refused before any change, so the journalled writes are unsent, not "may or may not be
    stored": the first refusal cancelled the other partitions' writes mid-flight and nothing
    was reported (review R20)."""
    from tta_dev_primitives.exceptions import UnsentWritesError

    user = "nozrem" + namespace().rpartition(":")[2]
    masters = redis_cluster.master_nodes()
    for node in masters:
        admin = aioredis.Redis(port=node.port)
        await admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-zrem")
        await admin.aclose()
    port = masters[0].port
    memory = fast_recovery(
        f"redis://{user}:pw@127.0.0.1:{port}/0", recovery_interval=60, max_recovery_interval=60
    )
    keys = [f"u{i}:s{i}:k" for i in range(12)]  # (over all three masters)
    try:
        with pytest.raises(BackendRefusedError, match="before any change"):
            await memory.add("u0:s0:direct", {"v": -1})
        with contextlib.ExitStack() as stack:
            for node in masters:
                stack.enter_context(node.stalled())
            for key in keys:
                await memory.add(key, {"content": key})
        with pytest.raises(UnsentWritesError) as closed:
            await memory.aclose()  # replays: refused before any change, on every master
        assert (closed.value.unsent, closed.value.unconfirmed) == (12, 0), str(closed.value)
        reader = MemoryPrimitive(redis_cluster.url, namespace=memory.namespace)
        assert await reader.size() == 0
        await reader.aclose()
    finally:
        for node in masters:
            admin = aioredis.Redis(port=node.port)
            await admin.execute_command("ACL", "DELUSER", user)
            await admin.aclose()
