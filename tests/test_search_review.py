"""Search on every backend against in-process search, at the edges of its arguments.

- A query of more distinct terms than the Query Engine is sent (``MAX_QUERY_TOKENS``) scores the
  rarest terms some memory holds, as in-process does, wherever they are in the query.
- A scope holding a lone surrogate is refused by name (no key can hold one), on every backend.
- A ``limit`` past the engine's own maximum returns every match, as in-process does.
- A scope is normalized once (``"u1::"`` is ``"u1:"``, never ``"u1"``).
- Term frequencies count up to the same cap in-process and in the engine, and survive a
  renumbering of the in-process index.
"""

from __future__ import annotations

from typing import Any

import pytest

from test_query_engine import embed, engine_memory
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import RENUMBER_FROM, SearchIndex
from tta_dev_primitives.stores._redis.keywords import MAX_QUERY_TOKENS


async def _scored(memory: MemoryPrimitive, query: str, limit: int, **options: Any) -> list[Any]:
    return [(hit.key, hit.score) for hit in await memory.search_scored(query, limit, **options)]


async def _same(memory: MemoryPrimitive, reference: MemoryPrimitive, query: str,
                limit: int, **options: Any) -> list[Any]:  # fmt: skip
    """The hits of ``memory``, checked equal (keys, order and scores) to ``reference``'s."""
    want = await _scored(reference, query, limit, **options)
    got = await _scored(memory, query, limit, **options)
    assert [key for key, _ in got] == [key for key, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], rel=1e-12)
    return got


async def test_a_long_query_scores_its_rarest_terms_wherever_they_are(memory: Any) -> None:
    """70 distinct words every memory but one holds, then a word only that one holds: every
    backend finds it, with in-process's scores (the engine used to be sent the first 64)."""
    common = [f"common{i}x" for i in range(MAX_QUERY_TOKENS + 6)]
    reference = MemoryPrimitive()
    for mem in (memory, reference):
        for i in range(5):
            await mem.add(f"u1:s1:{i}", {"content": " ".join(common[: 10 + i])})
        await mem.add("u1:s2:rare", {"content": "zebras graze"})
        await mem.add("u2:s1:other", {"content": "zebras and " + " ".join(common[-3:])})
    try:
        words = " ".join(common)
        for query in (f"{words} zebras?", f"{words} zebr", f"zebras {words}"):
            for scope in (None, "u1", "u1:s2"):
                got = await _same(memory, reference, query, 10, scope=scope)
                assert "u1:s2:rare" in [key for key, _ in got], (query, scope)
        await _same(memory, reference, f"{words} zebra", 10, filter={"missing": None})
    finally:
        await reference.aclose()


@pytest.mark.parametrize("scope", ["u1\ud800", "\udfff:s1", "u1:s1\ud83d"])
async def test_a_scope_with_a_lone_surrogate_is_refused_by_name(memory: Any, scope: str) -> None:
    """No key holds a lone surrogate and Redis cannot be sent one: every backend refuses the
    scope with the same typed error naming it (Redis used to raise "Redis refused the data:
    UnicodeEncodeError"), and nothing is forgotten."""
    await memory.add("u1:s1:a", {"content": "hello"})
    with pytest.raises(InvalidArgumentError, match=r"scope .* lone surrogate"):
        await memory.search("hello", scope=scope)
    with pytest.raises(InvalidArgumentError, match=r"scope .* lone surrogate"):
        await memory.search_items("", scope=scope)
    with pytest.raises(InvalidArgumentError, match=r"scope .* lone surrogate"):
        await memory.list_memories(scope)
    with pytest.raises(InvalidArgumentError, match=r"scope .* lone surrogate"):
        await memory.forget(scope)
    assert await memory.get("u1:s1:a") == {"content": "hello"}


@pytest.mark.parametrize("limit", [250_000, 1_000_000, 2**63, 10**30])
async def test_a_huge_limit_returns_every_match(memory: Any, limit: int) -> None:
    """The engine refuses a LIMIT past 1,000,000 (and one past 64 bits); a search may ask for
    any limit and gets every match, as in-process."""
    reference = MemoryPrimitive()
    for mem in (memory, reference):
        await mem.add("u1:a", {"content": "alpha beta", "role": "user"})
        await mem.add("u1:b", {"content": "alpha", "role": "user"})
        await mem.add("u2:c", {"content": "gamma", "role": "assistant"})
    try:
        for query in ("", "alpha", "alp", "alpha?"):
            await _same(memory, reference, query, limit)
            await _same(memory, reference, query, limit, scope="u1", filter={"role": "user"})
    finally:
        await reference.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
async def test_a_huge_limit_searches_by_meaning_in_the_engine(
    redis_query_engine: Any, mode: str
) -> None:
    """Semantic and hybrid searches with a limit past the engine's maximum, as in-process."""
    memory = engine_memory(redis_query_engine.url, embed=embed)
    reference = MemoryPrimitive(embed=embed)
    try:
        for mem in (memory, reference):
            await mem.add("u1:a", {"content": "peanut snack"})
            await mem.add("u1:b", {"content": "car brakes"})
        for limit in (1_000_000, 10**30):
            await _same(memory, reference, "peanut", limit, mode=mode)
            await _same(memory, reference, "peanut", limit, mode=mode, scope="u1")
    finally:
        await memory.clear()
        await memory.aclose()
        await reference.aclose()


async def test_a_scope_ending_in_two_colons_is_not_widened(memory: Any) -> None:
    """``"u1::"`` names scope ``"u1:"`` (keys ``u1:`` and ``u1::...``), as in-process. Redis
    normalized it twice, to ``"u1"``, and returned the user's other sessions."""
    reference = MemoryPrimitive()
    keys = ["u1:", "u1::a", "u1:s1:b", "u1", "u10::c", "{u1}::d", "u1:s1"]
    for mem in (memory, reference):
        for key in keys:
            await mem.add(key, {"content": f"shared words {key}"})
    try:
        for scope in ("u1::", "u1:", "u1", "{u1}::", "u1:s1:", "u1:::"):
            for query in ("shared", "", "shar", "words?"):
                got = await _same(memory, reference, query, 20, scope=scope)
                if scope == "u1::":
                    assert sorted(key for key, _ in got) == ["u1:", "u1::a"]
    finally:
        await reference.aclose()


async def test_a_word_said_hundreds_of_times_scores_alike_everywhere(memory: Any) -> None:
    """The engine's documents repeat a term at most 255 times; in-process counted up to
    4,095, so a memory repeating a word more scored differently in the Query Engine."""
    reference = MemoryPrimitive()
    for mem in (memory, reference):
        await mem.add("u1:a", {"content": "spam " * 300 + "eggs " * 300})
        await mem.add("u1:b", {"content": "spam " * 256})
        await mem.add("u1:c", {"content": "ham eggs spam"})
    try:
        for query in ("spam", "spa", "eggs spam", "eggs?"):
            await _same(memory, reference, query, 10)
            await _same(memory, reference, query, 10, scope="u1")
    finally:
        await reference.aclose()


def test_a_renumbered_index_keeps_each_documents_length() -> None:
    """The index renumbers its documents once most numbers belong to deleted ones; it re-added
    each with its capped frequencies as its length, so a memory repeating a word past the cap
    became shorter, and scored higher, after unrelated deletes."""
    index = SearchIndex()
    index.add("big", {"spam": 5_000, "eggs": 1})
    index.add("small", {"eggs": 1, "ham": 1})
    before = index.search_scored(Query(("eggs",)), 5)
    for i in range(RENUMBER_FROM + 10):  # others come and go: the index renumbers
        index.add(f"other{i}", {"ham": 1})
        index.remove(f"other{i}")
    assert index.search_scored(Query(("eggs",)), 5) == before
