"""llm-cache.md: "LLMCache(url, ttl_seconds=3600) expires answers; max_size bounds the
in-process cache (1,000 by default); namespace (tta:llm-cache) keeps it apart from other data
on the same Redis, and cache.clear() empties that namespace only"."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.outputs import Generation

from conftest import eventually, namespace
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langchain_cache import LLMCache


def answer(text: str) -> list[Generation]:
    return [Generation(text=text)]


@pytest.mark.parametrize("on_redis", [False, pytest.param(True, marks=pytest.mark.redis)])
async def test_answers_expire_after_ttl_seconds(
    on_redis: bool, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_server").url if on_redis else None
    cache = LLMCache(url, ttl_seconds=0.5, namespace=namespace())
    await cache.aupdate("Where does Ana live?", "m", answer("Lisbon."))
    found = await cache.alookup("Where does Ana live?", "m")
    assert found is not None
    assert found[0].text == "Lisbon."

    async def expired() -> bool:
        return await cache.alookup("Where does Ana live?", "m") is None

    await eventually(expired, within=10)
    if url is not None:  # and for every process, not only this one's copy
        other = LLMCache(url, namespace=cache._namespace)
        assert await other.alookup("Where does Ana live?", "m") is None
        await other.aclose()
    await cache.aclose()


async def test_max_size_bounds_the_in_process_cache() -> None:
    cache = LLMCache(max_size=2)
    for prompt in ("one", "two"):
        await cache.aupdate(prompt, "m", answer(prompt))
    await cache.alookup("one", "m")  # used: "two" is now the least recently used
    await cache.aupdate("three", "m", answer("three"))
    assert await cache.alookup("two", "m") is None
    assert [(await cache.alookup(p, "m") or [Generation(text="")])[0].text
            for p in ("one", "three")] == ["one", "three"]  # fmt: skip
    await cache.aclose()


@pytest.mark.redis
async def test_clear_empties_its_own_namespace_only(redis_server: RedisServer) -> None:
    """Another cache's namespace and a memory on the same Redis keep their data."""
    mine = LLMCache(redis_server.url, namespace=namespace())
    theirs = LLMCache(redis_server.url, namespace=namespace())
    memory = MemoryPrimitive(redis_server.url, namespace=namespace())
    await mine.aupdate("q", "m", answer("mine"))
    await theirs.aupdate("q", "m", answer("theirs"))
    await memory.add("u1:s1:a", {"content": "kept"})
    await mine.aclear()
    assert await mine.alookup("q", "m") is None
    assert (await theirs.alookup("q", "m") or [])[0].text == "theirs"
    assert await memory.get("u1:s1:a") == {"content": "kept"}
    fresh = LLMCache(redis_server.url, namespace=mine._namespace)
    assert await fresh.alookup("q", "m") is None  # gone from Redis, not only this process
    for made in (mine, theirs, fresh):
        await made.aclose()
    await memory.clear()
    await memory.aclose()
