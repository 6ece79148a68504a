"""Adversarial review of semantic and hybrid search under churn and across backends: each
test runs the same writes in-process, on Redis with a replica and in the Query Engine, and
asks for the same answers (keys, order, scores)."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from conftest import namespace
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import SearchIndex

pytestmark = pytest.mark.redis

Fill = Callable[[MemoryPrimitive], Awaitable[None]]
Ask = Callable[[MemoryPrimitive], Awaitable[Any]]
ENGINES = {"redis_server": "replica", "redis_query_engine": "redis"}
#: Where ``_answers`` asks besides in-process: the replica and the engine, each on one server
#: and on a cluster.
EVERYWHERE = {**ENGINES, "redis_cluster": "replica", "redis_query_engine_cluster": "redis"}


def _embed(texts: list[str]) -> list[list[float]]:
    """Texts "near <i>": just off the question's direction; "far...": further off, by length;
    anything else: the question's direction."""
    out = []
    for t in texts:
        if t.startswith("near "):
            out.append([1.0, 0.001 * int(t.split()[1]), 0.0])
        elif t.startswith("far"):
            out.append([1.0, 0.5, 0.5 + 0.1 * len(t)])
        else:
            out.append([1.0, 0.0, 0.0])
    return out


async def _answers(
    request: pytest.FixtureRequest, fill: Fill, ask: Ask, **options: Any
) -> dict[str, Any]:
    """``ask``'s answer after ``fill``, in-process and on each Redis backend."""
    answers = {}
    for backend in ("in_memory", *EVERYWHERE):
        if backend == "in_memory":
            memory = MemoryPrimitive(**options)
        else:
            memory = MemoryPrimitive(
                request.getfixturevalue(backend).url, namespace=namespace(),
                search_engine=EVERYWHERE[backend], redis_timeout=10.0, **options,  # type: ignore[arg-type]
            )  # fmt: skip
        try:
            await fill(memory)
            answers[backend] = await ask(memory)
        finally:
            await memory.clear()
            await memory.aclose()
    return answers


def _same(answers: dict[str, Any]) -> None:
    expected = answers["in_memory"]
    for backend, answer in answers.items():
        assert answer == expected, (backend, answer, expected)


async def _scored(memory: MemoryPrimitive, question: str, **kwargs: Any) -> list[tuple[str, float]]:
    return [(h.key, round(h.score, 5)) for h in await memory.search_scored(question, **kwargs)]


@pytest.mark.parametrize("vectors", [30, 130])
async def test_a_memory_with_many_vectors_does_not_crowd_out_the_others(
    request: pytest.FixtureRequest, vectors: int
) -> None:
    """The Query Engine's KNN counts vectors, not memories: one memory whose further vectors
    filled the ``limit + 20`` rows asked for was the whole answer (semantic: 30 vectors, a
    search for 3; hybrid: 130, past its 100 candidates), where in-process found 3."""

    async def fill(memory: MemoryPrimitive) -> None:
        texts = [f"near {i}" for i in range(vectors)]
        await memory.add("u:a", {"content": "alpha"}, vector_text=texts)
        await memory.add("u:b", {"content": "beta"}, vector_text="far")
        await memory.add("u:c", {"content": "gamma"}, vector_text="far x")

    async def ask(memory: MemoryPrimitive) -> Any:
        return [
            await _scored(memory, "question alpha", limit=3, mode=mode)
            for mode in ("semantic", "hybrid")
        ]

    answers = await _answers(request, fill, ask, embed=_embed)
    assert [key for key, _ in answers["in_memory"][0]] == ["u:a", "u:b", "u:c"]
    _same(answers)


@pytest.mark.parametrize("server", list(ENGINES))
async def test_two_vectors_of_another_embedder_are_not_read_as_one_of_this_one(
    request: pytest.FixtureRequest, server: str
) -> None:
    """A memory may hold several vectors, stored end to end without their count, and only
    unit rows were checked when there were several: an old 4-dim embedder's two vectors are
    one 8-dim row, which an 8-dim embedder's process read as its own (scored 1.0 by meaning,
    through the replica) instead of leaving the memory to keyword search."""
    url = request.getfixturevalue(server).url
    ns = namespace()

    def small(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, 0.0] if "x" in t else [0.0, 1.0, 0.0, 0.0] for t in texts]

    def big(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0] for t in texts]

    a = MemoryPrimitive(url, namespace=ns, embed=small, search_engine=ENGINES[server])
    await a.add("u1:s1:a", {"content": "old notes"}, vector_text=["x", "y"])
    b = MemoryPrimitive(url, namespace=ns, embed=big, search_engine=ENGINES[server])
    await b.add("u1:s1:b", {"content": "new notes"})
    found = await b.search_scored("anything", 5, mode="semantic")
    assert [h.key for h in found] == ["u1:s1:b"]
    await a.clear()
    for m in (a, b):
        await m.aclose()


@pytest.mark.parametrize("fresh", [False, True], ids=["writer", "another-process"])
async def test_a_keyword_search_first_does_not_leave_several_vectors_unread(
    request: pytest.FixtureRequest, fresh: bool
) -> None:
    """A replica that does not know the embedder's size yet read a memory's several vectors
    (end to end) as one long vector, which its index refused: the first search was by
    keyword, and the memory stayed out of every later search by meaning."""
    url = request.getfixturevalue("redis_server").url
    ns = namespace()

    def make() -> MemoryPrimitive:
        return MemoryPrimitive(url, namespace=ns, embed=_embed, search_engine="replica")

    writer = make()
    await writer.add("u:b", {"content": "beta"}, vector_text="far")
    await writer.add("u:a", {"content": "alpha"}, vector_text=["near 1", "near 2"])
    reader = make() if fresh else writer
    assert [h.key for h in await reader.search_scored("alpha", mode="keyword")] == ["u:a"]
    found = await reader.search_scored("question", 5, mode="semantic")
    assert [h.key for h in found] == ["u:a", "u:b"]
    await writer.clear()
    await writer.aclose()
    if fresh:
        await reader.aclose()


@pytest.mark.parametrize("copies", [60, 130])
async def test_equal_vectors_rank_newest_first_in_every_mode(
    request: pytest.FixtureRequest, copies: int
) -> None:
    """The same text written many times ("ok thanks") has one vector. The Query Engine orders
    equal distances oldest first, and its KNN read ``limit + 20`` rows: a search by meaning
    answered with the oldest copies, and hybrid (130 copies, past its 100 candidates) fused
    the keyword side's newest with the semantic side's oldest, scoring every hit 0.4 where
    in-process scored the newest 0.64."""

    async def fill(memory: MemoryPrimitive) -> None:
        for i in range(copies):
            await memory.add(f"u:{i:03d}", {"content": "ok thanks"}, vector_text="ok")

    async def ask(memory: MemoryPrimitive) -> Any:
        return [await _scored(memory, "ok", limit=3, mode=mode) for mode in ("semantic", "hybrid")]

    answers = await _answers(request, fill, ask, embed=_embed)
    newest = [f"u:{i:03d}" for i in range(copies - 1, copies - 4, -1)]
    assert [key for key, _ in answers["in_memory"][1]] == newest
    _same(answers)


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="needs usearch")
@pytest.mark.parametrize("scope", [None, "u1"])
@pytest.mark.parametrize("limit", [3, 10, 40])
def test_equal_vectors_rank_newest_first_through_the_graph(scope: str | None, limit: int) -> None:
    """Past the graph's threshold (20,000 vectors in use) the graph proposed ``2 * limit``
    (at least 32) of the documents that share the question's vector, chosen by the graph, and
    the newest of those won: not the newest of all, which the exact scan returns."""
    rng = np.random.default_rng(0)
    graph, exact = SearchIndex(ann_threshold=200), SearchIndex(ann_threshold=10**9)
    same = rng.normal(size=16).astype(np.float32)
    for i in range(1000):  # the equal ones among the oldest: all in the graph
        vector = same if i % 3 == 0 and i < 700 else rng.normal(size=16).astype(np.float32)
        for index in (graph, exact):
            index.add(f"u{i % 2}:{i}", {}, i, vector)
    assert graph.stats().graph is not None
    question = Query(terms=(), prefix_last=False, blank=False, mode="semantic", vector=same)
    want = exact.search_scored(question, limit, scope)
    assert graph.search_scored(question, limit, scope) == want
