"""A scope's memories as a whole, on every backend: listing newest first, and forgetting them.

What is promised (docs/memory.md): ``list_memories`` pages through a scope newest write
first with a cursor, and ``forget(scope)`` deletes exactly that scope's memories, in pages, so
that no process reads or finds them afterwards and nothing else is touched.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from conftest import fast_recovery, namespace, replayed, tcp_relay
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.memory import MemoryPage


async def all_pages(memory: MemoryPrimitive, scope: str | None, limit: int) -> list[str]:
    """Every key a listing of ``scope`` returns, page after page."""
    keys: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await memory.list_memories(scope, limit=limit, cursor=cursor)
        assert isinstance(page, MemoryPage)
        assert len(page.items) <= limit
        keys += [key for key, _ in page.items]
        if page.cursor is None:
            return keys
        cursor = page.cursor
    raise AssertionError("the listing never ended")


async def test_listing_pages_through_a_scope_newest_first(memory: Any) -> None:
    """Every memory of the scope once, newest write first, in pages of 7; no other user's."""
    for i in range(30):
        await memory.add(f"u1:s{i % 3}:t{i}", {"content": f"turn {i}"})
        await memory.add(f"u10:s1:t{i}", {"content": f"other {i}"})
    await memory.add("u1:s2:t5", {"content": "turn 5, rewritten"})  # now u1's newest
    want = ["u1:s2:t5", *(f"u1:s{i % 3}:t{i}" for i in range(29, -1, -1) if i != 5)]
    assert await all_pages(memory, "u1", 7) == want
    assert await all_pages(memory, "u1:s1", 4) == [k for k in want if k.startswith("u1:s1:")]
    assert len(await all_pages(memory, None, 25)) == 60
    first = await memory.list_memories("u1", limit=2)
    assert first.items == [("u1:s2:t5", {"content": "turn 5, rewritten"}),
                           ("u1:s2:t29", {"content": "turn 29"})]  # fmt: skip
    assert (await memory.list_memories("nobody")).items == []


async def test_forget_deletes_one_users_memories_and_nothing_else(memory: Any) -> None:
    """forget("u1") deletes u1's 1,100 memories (more than two pages); u10's and u2's stay."""
    for i in range(1100):
        await memory.add(f"u1:s{i % 4}:t{i}", {"content": f"my address is street {i}"})
    for i in range(20):
        await memory.add(f"u10:s1:t{i}", {"content": f"street {i}"})
        await memory.add(f"u2:s1:t{i}", {"content": f"street {i}"})
    assert await memory.forget("u1") == 1100
    assert await memory.get("u1:s3:t7") is None
    assert await memory.search("address street", limit=50, scope="u1") == []
    assert all(not k.startswith("u1:") for k, _ in await memory.search_items("street", 100))
    assert await all_pages(memory, "u1", 100) == []
    assert await memory.size() == 40
    assert await memory.forget("u1") == 0


async def test_forget_a_session_keeps_the_users_other_sessions(memory: Any) -> None:
    """forget("u1:s1") deletes that session only."""
    for i in range(12):
        await memory.add(f"u1:s{i % 2}:t{i}", {"content": f"turn {i}"})
    assert await memory.forget("u1:s1") == 6
    assert sorted(await all_pages(memory, "u1", 50)) == sorted(
        f"u1:s0:t{i}" for i in range(0, 12, 2)
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.forget(None), "forget needs a scope"),
        (lambda m: m.forget(":"), "scope ':' is not a key prefix"),
        (lambda m: m.list_memories(limit=0), "limit must be at least 1"),
        (lambda m: m.list_memories(cursor="not one"), "did not come from list_memories"),
    ],
)
async def test_bad_arguments_are_named(call: Any, match: str) -> None:
    """A missing scope, a bad limit or a made-up cursor raise a clear error; nothing changes."""
    memory = MemoryPrimitive()
    await memory.add("u1:s1:t1", {"content": "kept"})
    with pytest.raises(InvalidArgumentError, match=match):
        await call(memory)
    assert await memory.size() == 1


@pytest.mark.redis
@pytest.mark.parametrize(("fixture", "engine"), [("redis_server", "replica"),
                                                 ("redis_query_engine", "redis")])  # fmt: skip
async def test_after_forget_no_other_process_reads_or_finds_them(
    request: pytest.FixtureRequest, fixture: str, engine: str
) -> None:
    """A reader that searched (and so holds the scope's replica) finds none of a forgotten
    user's memories afterwards, and another user's are untouched."""
    from conftest import namespace

    server = request.getfixturevalue(fixture)
    ns = namespace()
    writer = MemoryPrimitive(server.url, namespace=ns, search_engine=engine)
    reader = MemoryPrimitive(server.url, namespace=ns, search_engine=engine)
    for i in range(600):
        await writer.add(f"u{i % 3}:s{i % 5}:t{i}", {"content": f"my card number {i}"})
    assert len(await reader.search("card number", limit=500, scope="u1")) == 200
    assert await writer.forget("u1") == 200
    assert await reader.search("card number", limit=500, scope="u1") == []
    assert not [k for k, _ in await reader.search_items("card", 600) if k.startswith("u1:")]
    assert await reader.get("u1:s1:t1") is None
    assert len(await reader.search("card number", limit=500, scope="u2")) == 200
    await writer.clear()
    for m in (writer, reader):
        await m.aclose()


@pytest.mark.redis
async def test_forget_while_redis_is_down_raises_and_deletes_nothing(
    redis_server_factory: Any,
) -> None:
    """Redis killed: forget raises IncompleteOperationError (0 done); the memories come back
    with Redis, none lost and none half-forgotten."""
    from tta_dev_primitives.exceptions import IncompleteOperationError

    server = redis_server_factory(appendonly=True)
    memory = MemoryPrimitive(server.url, redis_timeout=5)  # a refused connection is at once
    for i in range(50):
        await memory.add(f"u1:s1:t{i}", {"content": f"turn {i}"})
    server.kill()
    with pytest.raises(IncompleteOperationError, match="deleted 0 memories") as raised:
        await memory.forget("u1")
    assert raised.value.done == 0
    server.start()
    fresh = MemoryPrimitive(server.url)
    assert len(await all_pages(fresh, "u1", 100)) == 50
    for m in (memory, fresh):
        await m.aclose()


@pytest.mark.redis
async def test_a_forget_cut_short_counts_the_deletes_it_journalled(
    redis_server_factory: Any,
) -> None:
    """Redis stops answering in the middle of a page's deletes (a reshard, a failover): the
    rest are journalled and replay when Redis is back. They were not counted, and the run
    after the replay found them gone: 30 memories forgotten, 10 reported (R6: 503 of 547)."""
    from tta_dev_primitives.exceptions import IncompleteOperationError
    from tta_dev_primitives.stores._redis import lua

    server = redis_server_factory()
    writer = MemoryPrimitive(server.url, namespace=(ns := namespace()))
    for i in range(30):
        await writer.add(f"u1:s1:t{i}", {"content": f"turn {i}"})  # not in the forgetter's copy
    delete = hashlib.sha1(lua.DELETE.encode()).hexdigest().encode()
    sent, cutting = 0, True

    def cut(chunk: bytes) -> bool:
        nonlocal sent
        if cutting and delete in chunk:
            sent += 1
            return sent > 10  # the first ten deletes reach Redis, then the link fails
        return False

    async with tcp_relay(lambda: server.port, cut) as url:
        memory = fast_recovery(url, ns)
        with pytest.raises(IncompleteOperationError, match="when Redis is back") as raised:
            await memory.forget("u1")
        cutting = False
        await replayed(memory)
        assert raised.value.done + await memory.forget("u1") == 30
        assert await writer.size() == 0
        await memory.aclose()
    await writer.aclose()


@pytest.mark.redis
async def test_the_stand_by_copy_keeps_to_an_odd_scope_during_an_outage(
    redis_server_factory: Any,
) -> None:
    """Scope "u1::" is "u1:" (keys u1: and u1::...) in the in-process stand-by copy as in Redis.
    The copy normalized the scope a second time, to "u1": forget("u1::") deleted 2 memories in
    Redis but dropped all five of u1 from the copy, so a stalled Redis then left get() without
    memories Redis still held; and listing "u1::" from the copy listed all of u1."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    keys = ["u1", "u1:", "u1::x", "u1:s1", "u1:s1:a", "u2:s1:a"]
    for key in keys:
        await memory.add(key, {"content": f"apple {key}"})
    scope_keys = ["u1::x", "u1:"]  # newest write first
    with server.stalled():  # served by the stand-by copy
        assert await all_pages(memory, "u1::", 2) == scope_keys
        assert not memory.using_redis
        assert sorted(k for k, _ in await memory.search_items("apple", 10, scope="u1::")) == [
            "u1:", "u1::x",
        ]  # fmt: skip
        assert [k for k, _ in await memory.search_items("", 10, scope="u1::")] == scope_keys
        assert await all_pages(memory, "u1:", 10) == ["u1:s1:a", "u1:s1", "u1::x", "u1:", "u1"]
    await replayed(memory)
    assert await memory.forget("u1::") == 2
    kept = ["u1", "u1:s1", "u1:s1:a", "u2:s1:a"]
    with server.stalled():
        for key in kept:
            assert await memory.get(key) == {"content": f"apple {key}"}, key
        assert not memory.using_redis
        assert await memory.get("u1:") is None
        assert await memory.get("u1::x") is None
        assert await all_pages(memory, "u1", 10) == ["u1:s1:a", "u1:s1", "u1"]
        assert await all_pages(memory, "u1::", 10) == []
        assert await memory.search_items("apple", 10, scope="u1::") == []
    await replayed(memory)
    assert sorted(await all_pages(memory, None, 10)) == kept  # Redis agrees
    await memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("scope", ["u1", "u1:s1"])
async def test_an_outage_write_replayed_after_a_forget_does_not_come_back(
    redis_server_factory: Any, scope: str
) -> None:
    """Worker A writes u1:s1:t2 during an outage (journalled, acknowledged); once Redis is back,
    worker B forgets the scope before A replays. A's replay must not bring the memory back:
    it was written before the forget. A write made after the forget stays."""
    server = redis_server_factory(appendonly=True)
    # A's probes are not due before the forget (its replay is then its flush's).
    options: dict[str, Any] = {"redis_timeout": 5, "recovery_interval": 30}
    worker_a = MemoryPrimitive(server.url, **options)
    worker_b = MemoryPrimitive(server.url, **options)
    await worker_a.add("u1:s1:t1", {"content": "my address is 1 Main St"})
    await worker_a.add("u2:s1:t1", {"content": "another user"})
    assert await worker_b.size() == 2
    server.kill()
    await worker_a.add("u1:s1:t2", {"content": "my phone is 555-0100"})  # journalled
    assert not worker_a.using_redis
    server.start()
    assert await worker_b.forget(scope) == 1
    assert await worker_a.flush()  # A's replay, after the forget
    assert worker_a.get_backend_info()["stale_writes"] == 1  # refused, and counted
    fresh = MemoryPrimitive(server.url)
    assert await fresh.get("u1:s1:t2") is None
    assert await all_pages(fresh, scope, 100) == []
    assert await fresh.search("phone address", scope="u1") == []
    assert await worker_a.get("u1:s1:t2") is None  # its in-process copy went too
    await worker_a.add("u1:s1:t3", {"content": "a new turn after the forget"})
    assert await all_pages(fresh, "u1", 100) == ["u1:s1:t3"]
    assert await fresh.get("u2:s1:t1") == {"content": "another user"}
    for m in (worker_a, worker_b, fresh):
        await m.aclose()


async def test_min_score_leaves_out_weaker_matches(memory: Any) -> None:
    """min_score keeps the hits scoring at least that: a cut of the same ranking, every backend."""
    for i, text in enumerate(["garden roses garden", "garden", "roses in a pot", "tea"]):
        await memory.add(f"u1:s1:t{i}", {"content": text})
    ranked = await memory.search_scored("garden roses", limit=10)
    assert len(ranked) == 3
    floor = ranked[1].score
    cut = await memory.search_scored("garden roses", limit=10, min_score=floor)
    assert [h.key for h in cut] == [h.key for h in ranked if h.score >= floor]
    assert await memory.search("garden roses", min_score=ranked[0].score + 1) == []
    with pytest.raises(InvalidArgumentError, match="min_score"):
        await memory.search("garden", min_score=float("nan"))


async def test_touch_restarts_a_memorys_clock(memory: Any) -> None:
    """touch gives a new deadline (or none) and keeps the value; an absent key is False."""
    await memory.add("u1:s1:t1", {"content": "my passport number"}, ttl=30)
    assert await memory.touch("u1:s1:t1", 3600) is True
    left = {key: ttl async for key, _, ttl in memory.items()}
    assert 3000 < left["u1:s1:t1"] <= 3600
    assert await memory.touch("u1:s1:t1", None) is True
    assert {key: ttl async for key, _, ttl in memory.items()}["u1:s1:t1"] is None
    assert await memory.get("u1:s1:t1") == {"content": "my passport number"}
    assert await memory.touch("u1:s1:nothing", 60) is False
    await memory.add("u1:s1:t2", {"content": "newer"})
    await memory.touch("u1:s1:t1", 60)  # a touch counts as a write: first in the listing
    assert [k for k, _ in (await memory.list_memories("u1")).items] == ["u1:s1:t1", "u1:s1:t2"]


async def test_a_touch_is_the_newest_write_for_search_too(memory: Any) -> None:
    """A touch counts as a write for search as it does for the listing: equal scores and a
    blank query's newest put the touched memory first, on every backend. In-process search
    kept its first write's place (Redis, its replicas and the Query Engine did not), so the
    same calls answered differently in-process."""
    for i in range(3):
        await memory.add(f"u1:s1:{i}", {"content": "the same words"})
    await memory.touch("u1:s1:0", 60)
    assert [key for key, _ in await memory.search_items("same words", 2)] == ["u1:s1:0", "u1:s1:2"]
    assert [key for key, _ in await memory.search_items("", 1, scope="u1")] == ["u1:s1:0"]
    assert await memory.get("u1:s1:0") == {"content": "the same words"}


async def test_a_touch_keeps_a_memorys_vectors_and_words() -> None:
    """In-process, a touch re-files the memory as the newest with what it held: its words
    and its vectors (every mode's scores unchanged)."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(t) % 3), 0.5] for t in texts]

    memory = MemoryPrimitive(embed=embed, dims=3)
    await memory.add("u1:s1:a", {"content": "tomatoes grow in summer"})
    await memory.add("u1:s1:b", {"content": "a different note"})
    before = {mode: await memory.search_scored("tomatoes", 2, mode=mode) for mode in
              ("keyword", "semantic", "hybrid")}  # fmt: skip
    await memory.touch("u1:s1:a", None)
    assert [key for key, _ in await memory.search_items("", 1)] == ["u1:s1:a"]
    for mode, hits in before.items():
        after = await memory.search_scored("tomatoes", 2, mode=mode)
        assert {h.key: h.score for h in after} == {h.key: h.score for h in hits}, mode
    await memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(("fixture", "engine"), [("redis_server", "replica"),
                                                 ("redis_query_engine", "redis")])  # fmt: skip
async def test_a_touched_memory_outlives_its_first_deadline_in_every_process(
    request: pytest.FixtureRequest, fixture: str, engine: str
) -> None:
    """Past the deadline it was written with, a touched memory is still read and found by a
    reader that held it in its replica (the feed carried the new deadline) or in the engine."""
    import asyncio
    import time

    from conftest import namespace

    server = request.getfixturevalue(fixture)
    ns = namespace()
    writer = MemoryPrimitive(server.url, namespace=ns, search_engine=engine, redis_timeout=10)
    reader = MemoryPrimitive(server.url, namespace=ns, search_engine=engine, redis_timeout=10)
    for attempt in range(3):  # a machine stalled past 3 s between add and touch: go again
        key = f"u1:s1:t{attempt}"
        written = time.monotonic()
        await writer.add(key, {"content": "remember the gate code"}, ttl=3)
        assert len(await reader.search("gate code", scope="u1")) == 1
        if await writer.touch(key, 600):
            break
    else:
        raise AssertionError("touch never found the memory it had just written")
    await asyncio.sleep(max(0.0, written + 3.5 - time.monotonic()))
    assert await reader.get(key) == {"content": "remember the gate code"}
    assert [k for k, _ in await reader.search_items("gate code", scope="u1")] == [key]
    await writer.clear()
    for m in (writer, reader):
        await m.aclose()


@pytest.mark.redis
async def test_touch_while_redis_is_down_raises(redis_server_factory: Any) -> None:
    """Redis killed: touch raises BackendUnavailableError instead of pretending."""
    from tta_dev_primitives.exceptions import BackendUnavailableError

    server = redis_server_factory()
    memory = MemoryPrimitive(server.url, redis_timeout=5)
    await memory.add("u1:s1:t1", {"content": "x"}, ttl=60)
    server.kill()
    with pytest.raises(BackendUnavailableError):
        await memory.touch("u1:s1:t1", 600)
    with pytest.raises(BackendUnavailableError, match="needs Redis"):
        await memory.touch("u1:s1:t1", 600)  # now degraded: named without a call
    await memory.aclose()
