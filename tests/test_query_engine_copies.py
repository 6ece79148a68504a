"""Many copies of one vector (the same chat turn written many times: "Hey!", "thanks!") in the
Query Engine's index: searches by meaning still answer as in-process.

The engine's HNSW graph keeps each node's nearest neighbours, and copies of one vector are
each other's nearest (distance 0), so they fill each other's neighbour lists; a search that
reaches them does not get out again. With 300 copies among 600 memories, 23 of 40 questions
near the copies got an unscoped semantic top 10 other than in-process's (nearer memories left
out). Below ``EXACT_BELOW`` documents the engine now compares the question with every vector;
above, a graph answer whose best ``limit + 1`` hold equal scores is asked again exactly.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import numpy as np
import pytest

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis import queries

pytestmark = pytest.mark.redis

DIM = 8
DISTINCT = 300
COPIES = 300
QUESTIONS = 40
_rng = np.random.default_rng(5)
BASE = _rng.standard_normal((DISTINCT, DIM))
COPY = _rng.standard_normal(DIM)


def _embed(texts: list[str]) -> list[list[float]]:
    """One vector for every copy ("hey"), a distinct one for each "d<i>", and for each "q<i>"
    a question drawn towards the copies: its nearest memories are copies and others."""
    out = []
    for text in texts:
        if text == "hey":
            out.append(COPY.tolist())
        elif text.startswith("q"):
            noise = np.random.default_rng(1000 + int(text[1:])).standard_normal(DIM)
            out.append((noise + COPY).tolist())
        else:
            out.append(BASE[int(text[1:])].tolist())
    return out


def _turns() -> list[str]:
    order = [f"d{i}" for i in range(DISTINCT)] + ["hey"] * COPIES
    np.random.default_rng(9).shuffle(order)
    return order


async def _compare(url: str, scopes: list[str | None]) -> list[Any]:
    """The questions' semantic and hybrid answers (keys, scores to 5 places) that differ
    between in-process and the engine, in each scope."""
    local = MemoryPrimitive(embed=_embed)
    remote = MemoryPrimitive(
        url, namespace=f"copies:{uuid4().hex[:8]}", search_engine="redis", redis_timeout=10.0,
        embed=_embed,
    )  # fmt: skip
    differ = []
    try:
        for i, text in enumerate(_turns()):
            for memory in (local, remote):
                await memory.add(f"u{i % 3}:{i}", {"content": text})
        for q in range(QUESTIONS):
            for scope in scopes:
                for mode in ("semantic", "hybrid"):
                    answers = [
                        [(h.key, round(h.score, 5)) for h in await memory.search_scored(
                            f"q{q}", 10, mode=mode, scope=scope)]  # type: ignore[arg-type]
                        for memory in (local, remote)
                    ]  # fmt: skip
                    if answers[0] != answers[1]:
                        differ.append((q, scope, mode, answers))
        assert remote.get_backend_info()["search_engine"] == "redis"  # (not its replica)
    finally:
        await remote.clear()
        await remote.aclose()
        await local.aclose()
    return differ


@pytest.mark.parametrize("server", ["redis_query_engine", "redis_query_engine_cluster"])
async def test_many_copies_of_one_vector_do_not_hide_nearer_memories(
    request: pytest.FixtureRequest, server: str
) -> None:
    """Below ``EXACT_BELOW`` documents every search by meaning is exact: the same top 10 as
    in-process for every question, unscoped and scoped (on a cluster, each master's)."""
    url = request.getfixturevalue(server).url
    assert await _compare(url, [None, "u1"]) == []


async def test_past_the_exact_size_a_graph_answer_that_ties_is_asked_again_exactly(
    redis_query_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index past ``EXACT_BELOW`` is searched through its graph; when the best ``limit + 1``
    of its answer hold equal scores (copies of one vector, where the graph goes astray) the
    engine is asked again exactly, as in-process's graph does."""
    monkeypatch.setattr(queries, "EXACT_BELOW", 0)
    assert await _compare(redis_query_engine.url, [None]) == []
