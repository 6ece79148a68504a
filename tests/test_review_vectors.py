"""Adversarial review of semantic and hybrid search under churn and across backends: each
test runs the same writes in-process, on Redis with a replica and in the Query Engine, and
asks for the same answers (keys, order, scores)."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from conftest import before_the_embedder_record, namespace
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

    # (Written by a version before the embedder record: now another embedder is refused.)
    a = MemoryPrimitive(url, namespace=ns, embed=small, search_engine=ENGINES[server])
    before_the_embedder_record(a)
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


WORDS = ["peanut", "snack", "car", "brakes", "hike", "trail", "tuesday", "garage", "apple", "river"]
KEYS = [f"u{u}:s{s}:{t}" for u in range(2) for s in range(2) for t in range(3)]


def _topics(texts: list[str]) -> list[list[float]]:
    """Six topics, words weighted by length: few ties, but some."""
    out = []
    for text in texts:
        v = [0.0] * 6
        for word in text.split():
            if word in WORDS:
                v[WORDS.index(word) % 5] += 1.0 + (len(word) % 3) * 0.25
        out.append(v if any(v) else [0.0] * 5 + [1.0])
    return out


def _churn(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[str, dict[str, Any]]]]:
    """Writes, updates (new text, new vectors, several, none), deletes, touches, forgets and
    clears of a few keys, with searches between; and the searches asked."""
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    ops: list[tuple[Any, ...]] = []
    for _ in range(40):
        r, key = rng.random(), rng.choice(KEYS)
        if r < 0.55:
            vector_text = rng.choice([None, None, None, "", [text(2) for _ in range(3)]])
            value = {"role": rng.choice(["user", "assistant"]), "content": text(3)}
            ops.append(("add", key, value, vector_text))
        elif r < 0.7:
            ops.append(("delete", key))
        elif r < 0.8:
            ops.append(("touch", key))
        elif r < 0.84:
            ops.append(("forget", rng.choice(["u0", "u1:s1", "u0:s0"])))
        elif r < 0.85:
            ops.append(("clear",))
        else:
            ops.append(("search",))
    ops.append(("search",))
    asks = []
    for _ in range(4):
        mode = rng.choice(["keyword", "semantic", "hybrid", "hybrid"])
        kwargs: dict[str, Any] = {
            "limit": rng.choice([1, 3, 20]),
            "scope": rng.choice([None, "u0", "u1", "u0:s1"]),
            "mode": mode,
        }
        if rng.random() < 0.3:
            kwargs["filter"] = {"role": rng.choice(["user", "assistant"])}
        if mode == "hybrid" and rng.random() < 0.4:
            kwargs["hybrid_weight"] = rng.choice([0.3, 0.8])
        asks.append((text(rng.randint(1, 2)), kwargs))
    return ops, asks


@pytest.mark.parametrize("seed", range(4))
async def test_churn_answers_alike_everywhere(request: pytest.FixtureRequest, seed: int) -> None:
    """Random churn of a few keys, searched between the changes in every mode: the same keys
    in the same order with the same scores in-process, with replicas and in the engine."""
    ops, asks = _churn(seed)

    async def fill(memory: MemoryPrimitive) -> None:
        pass

    async def ask(memory: MemoryPrimitive) -> Any:
        answers = []
        for op in ops:
            if op[0] == "add":
                await memory.add(op[1], op[2], vector_text=op[3])
            elif op[0] == "delete":
                await memory.delete(op[1])
            elif op[0] == "touch":
                await memory.touch(op[1], None)
            elif op[0] == "forget":
                await memory.forget(op[1])
            elif op[0] == "clear":
                await memory.clear()
            else:
                for question, kwargs in asks:
                    answers.append(await _scored(memory, question, **kwargs))
        return answers

    _same(await _answers(request, fill, ask, embed=_topics))
