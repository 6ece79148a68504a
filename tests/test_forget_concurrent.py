"""A forget and adds of its scope at once, on every backend: the call order decides.

What is promised (docs/production.md, "Ordering"; docs/memory.md): every ``add`` and ``forget``
gets a version when it is called. A forget removes, and counts, the memories of its scope
written before it was called; an ``add`` called after it (a newer version) stays and is not
counted, as a clear keeps what is written while it runs. The same in-process, in Redis (plain,
Cluster, Query Engine) and in the in-process stand-by copy that serves reads during an outage.
In ``asyncio.gather(a(), b())`` ``a`` is called first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import Factory, namespace
from tta_dev_primitives import MemoryPrimitive

OLD = {"content": "said before the forget"}
NEW = {"content": "said after the forget"}


async def keys_of(memory: MemoryPrimitive, scope: str) -> list[str]:
    page = await memory.list_memories(scope, limit=100)
    assert page.cursor is None
    return sorted(key for key, _ in page.items)


async def standby(memory: MemoryPrimitive, key: str) -> Any:
    """The in-process copy of ``key`` (the store itself when there is no Redis)."""
    return await memory._store.local.get(key)  # type: ignore[attr-defined]


async def prepare(memory: MemoryPrimitive, older: bool) -> None:
    """Another user's memory (never touched), and with ``older`` one of u1's."""
    await memory.add("u2:s1:b", {"content": "another user"})
    if older:
        await memory.add("u1:s1:old", OLD)
    await memory.size()


@pytest.mark.parametrize("older", [False, True], ids=["u1-empty", "u1-holds-one"])
async def test_an_add_called_after_forget_stays_and_is_not_counted(
    memory: Any, older: bool
) -> None:
    """gather(forget, add): the add returns normally and its memory is there, in Redis and in
    the stand-by copy; the forget counts only what was there before it."""
    await prepare(memory, older)
    forgot, added = await asyncio.gather(memory.forget("u1"), memory.add("u1:s1:a", NEW))
    assert added is None
    assert forgot == (1 if older else 0)
    assert await memory.get("u1:s1:a") == NEW
    assert await memory.get("u1:s1:old") is None
    assert await keys_of(memory, "u1") == ["u1:s1:a"]
    assert [k for k, _ in await memory.search_items("forget", 10, scope="u1")] == ["u1:s1:a"]
    assert await memory.size() == 2
    assert await standby(memory, "u1:s1:a") is not None
    assert await standby(memory, "u1:s1:old") is None
    assert await memory.get("u2:s1:b") == {"content": "another user"}


@pytest.mark.parametrize("older", [False, True], ids=["u1-empty", "u1-holds-one"])
async def test_an_add_called_before_forget_is_forgotten_and_counted(
    memory: Any, older: bool
) -> None:
    """gather(add, forget): the add was called first, so the forget removes it and counts it.
    The namespace's first write (u1 empty) takes longer on the Query Engine (its index is made
    first): the forget waits for it, not to overtake it (it would be gone but not counted)."""
    if older:
        await memory.add("u1:s1:old", OLD)
    await memory.size()
    added, forgot = await asyncio.gather(memory.add("u1:s1:a", NEW), memory.forget("u1"))
    assert added is None
    assert forgot == (2 if older else 1)
    assert await memory.get("u1:s1:a") is None
    assert await keys_of(memory, "u1") == []
    assert await memory.size() == 0
    assert await standby(memory, "u1:s1:a") is None


async def test_adds_on_both_sides_of_a_forget(memory: Any) -> None:
    """Adds called before the forget go (counted), those called after it stay (not counted),
    however their writes interleave with the forget's pages."""
    await prepare(memory, older=True)
    before = [memory.add(f"u1:s{i % 2}:before{i}", OLD) for i in range(5)]
    after = [memory.add(f"u1:s{i % 2}:after{i}", NEW) for i in range(5)]
    results = await asyncio.gather(*before, memory.forget("u1"), *after)
    assert results[5] == 6  # u1:s1:old and the five before
    assert await keys_of(memory, "u1") == sorted(f"u1:s{i % 2}:after{i}" for i in range(5))
    for i in range(5):
        assert await memory.get(f"u1:s{i % 2}:after{i}") == NEW
        assert await standby(memory, f"u1:s{i % 2}:after{i}") is not None
        assert await standby(memory, f"u1:s{i % 2}:before{i}") is None
    assert await memory.size() == 6


async def test_a_memory_touched_after_forget_is_still_forgotten(memory: Any) -> None:
    """A touch changes no value: a memory written before the forget goes even if touched after
    it was called (its deadline is not a newer write), in-process as in Redis."""
    await prepare(memory, older=True)
    forgot, touched = await asyncio.gather(memory.forget("u1"), memory.touch("u1:s1:old", 60))
    assert forgot == 1
    assert isinstance(touched, bool)
    assert await memory.get("u1:s1:old") is None
    assert await standby(memory, "u1:s1:old") is None
    assert await memory.size() == 1


@pytest.mark.redis
@pytest.mark.parametrize("ticks", [0, 1, 2, 6])
@pytest.mark.parametrize("older", [False, True], ids=["u1-empty", "u1-holds-one"])
async def test_the_standby_copy_keeps_an_add_called_after_forget(
    redis_server_factory: Factory, ticks: int, older: bool
) -> None:
    """Plain Redis: an add called after the forget (a few turns of the loop later, so that it
    lands in each step of the forget) is served by the stand-by copy once Redis stops
    answering; what the forget removed is not."""
    server = redis_server_factory()
    memory = MemoryPrimitive(server.url, namespace=namespace(), redis_timeout=0.5)
    await prepare(memory, older)

    async def later() -> None:
        for _ in range(ticks):
            await asyncio.sleep(0)
        await memory.add("u1:s1:a", NEW)

    forgot, _ = await asyncio.gather(memory.forget("u1"), later())
    assert forgot == (1 if older else 0)
    assert await memory.get("u1:s1:a") == NEW
    assert await memory.size() == 2
    with server.stalled():
        assert await memory.get("u1:s1:a") == NEW  # the stand-by copy
        assert not memory.using_redis
        assert await memory.get("u1:s1:old") is None
        assert await memory.get("u2:s1:b") == {"content": "another user"}
    await memory.aclose()


#: Read on a worker thread before its write (over 4,000 characters): the add reaches the store
#: after changes called later than it would, were they not ordered by their calls.
BIG = {"content": "a kayak trip said before the forget " + "paddle " * 800}


@pytest.mark.parametrize("later", ["forget", "delete", "clear", "touch", "add"])
async def test_a_change_called_after_an_add_of_a_large_value_comes_after_it(
    memory: Any, later: str
) -> None:
    """gather(add(a large value), X): the add was called first, so X applies to its memory:
    forget, delete and clear remove it (and say so), touch finds it, and a second add's value
    stands. The add read its value on a worker thread meanwhile: X overtook it, and the
    memory outlived a "forget me" that counted 0."""
    key = "u1:s1:big"
    changes = {
        "forget": lambda: memory.forget("u1"),
        "delete": lambda: memory.delete(key),
        "clear": lambda: memory.clear(),
        "touch": lambda: memory.touch(key, 3600),
        "add": lambda: memory.add(key, NEW),
    }
    added, said = await asyncio.gather(memory.add(key, BIG), changes[later]())
    assert added is None
    if later == "forget":
        assert said == 1
    elif later in ("delete", "touch"):
        assert said is True
    kept = await memory.get(key)
    assert kept == {"touch": BIG, "add": NEW}.get(later)
    assert (await standby(memory, key) is None) == (kept is None)
    found = [k for k, _ in await memory.search_items("kayak forget", 10, scope="u1")]
    assert found == ([key] if later == "touch" or later == "add" else [])
    assert await memory.size() == (0 if kept is None else 1)


def slow_embed() -> Any:
    """An embedder that takes a while, as a remote one does: every add waits for it."""

    async def embed(texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(0.05)
        return [[1.0, float(len(text) % 5) + 1.0] for text in texts]

    return embed


@pytest.mark.parametrize("backend", ["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_an_add_still_being_embedded_is_not_overtaken(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """With an embedder every add awaits it before its write: a forget, delete or clear called
    while it embeds still removes its memory, and the forget counts it."""
    url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    memory = MemoryPrimitive(url, namespace=namespace(), embed=slow_embed(), dims=2)
    _, forgot = await asyncio.gather(memory.add("u1:s1:a", OLD), memory.forget("u1"))
    assert forgot == 1
    assert await memory.get("u1:s1:a") is None
    assert await memory.search("said before", scope="u1", mode="semantic") == []
    _, deleted = await asyncio.gather(memory.add("u1:s1:b", OLD), memory.delete("u1:s1:b"))
    assert deleted is True
    await asyncio.gather(memory.add("u1:s1:c", OLD), memory.clear())
    assert await memory.size() == 0
    await memory.clear()
    await memory.aclose()


async def test_a_sync_call_never_waits_for_a_change_of_the_loop_it_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LangGraph's sync store methods may be called inside a running loop: the call blocks that
    loop while its work runs on the library's own. An ``aput`` of the same item on the blocked
    loop, still embedding, cannot return before the sync call does: a sync ``delete`` that
    waited for it held the whole loop for the 10 s bound. It is not waited for (not ordered:
    the put lands after the delete, as it did before calls were ordered)."""
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore
    from tta_dev_primitives.memory import _call_order

    waited: list[int] = []
    ahead = _call_order.CallOrder._ahead

    def watched(self: Any, ticket: int) -> bool:
        found: bool = ahead(self, ticket)
        if found:
            waited.append(ticket)
        return found

    monkeypatch.setattr(_call_order.CallOrder, "_ahead", watched)
    memory = MemoryPrimitive(embed=slow_embed(), dims=2)
    store = MemoryPrimitiveStore(memory)
    put = asyncio.create_task(store.aput(("users", "u1"), "prefs", {"text": "likes tea"}))
    await asyncio.sleep(0.01)  # its add now waits for the embedder, on this loop
    store.delete(("users", "u1"), "prefs")  # sync: blocks this loop while it runs
    assert waited == []
    await put
    assert (await store.aget(("users", "u1"), "prefs")) is not None
    await memory.aclose()
