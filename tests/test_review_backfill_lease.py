"""Review: the Query Engine's backfill lease (``RedisIndex._backfill``) on a real server.

A process that gives the index its vector field (``QueryEngine._add_vectors``) unmarks every
partition's ``ftdone`` / ``ftnext`` so that its own backfill writes the vectors of memories
kept before the field existed. While another process (one without an embedder) holds the
partition's lease, that backfill is skipped; the holder goes on from its own cursor, writes
documents without vectors, and marks the partition done. The engine then never holds those
vectors, and a search by meaning in it misses memories the in-process search finds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import namespace
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis import search as redis_search

pytestmark = pytest.mark.redis


async def embed(texts: list[str]) -> list[list[float]]:
    return [[0.0, 1.0, 0.0, 0.0] if "brakes" in t else [0.0, 0.0, 0.0, 1.0] for t in texts]


async def test_a_vector_backfill_is_not_marked_done_by_a_lease_holder_without_vectors(
    redis_query_engine: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lease that cannot run out while this (possibly slow) test runs: the race is the
    # order of the steps below, not the lease's expiry.
    monkeypatch.setattr(redis_search, "LEASE_MS", 600_000)
    url, ns = redis_query_engine.url, namespace()
    options: dict[str, Any] = {"namespace": ns, "redis_timeout": 10.0}
    old = MemoryPrimitive(url, search_engine="replica", **options)
    for start in range(0, 1500, 500):  # more than one backfill page (PAGE_COUNT)
        await asyncio.gather(*(
            old.add(f"u{i % 7}:s1:{i}", {"content": f"note {i} about the garden"})
            for i in range(start, start + 500)
        ))  # fmt: skip
    # A process without an embedder starts the backfill: its first page, lease held.
    plain = MemoryPrimitive(url, search_engine="redis", **options)
    index: Any = plain._store.remote.index  # type: ignore[union-attr]
    await index.prepare()
    assert not await index._backfill(1)
    # Meanwhile a memory with a vector is written by a replica process (no vector field yet)...
    writer = MemoryPrimitive(url, search_engine="replica", embed=embed, **options)
    await writer.add("u1:s1:car", {"content": "the car brakes squeal"})
    # ...and a process with the embedder gives the index its vector field: its backfill must
    # write that vector, but the lease is held.
    searcher = MemoryPrimitive(url, search_engine="redis", embed=embed, **options)
    first = await searcher.search("brakes squeal", limit=3, mode="semantic")
    assert [v["content"] for v in first][:1] == ["the car brakes squeal"]  # the replica
    await searcher._store.remote.index.engine.wait_backfill()  # type: ignore[union-attr]
    # The holder ends its backfill and marks every partition done.
    assert await index._backfill(None)
    found = await searcher.search("brakes squeal", limit=3, mode="semantic")
    assert searcher.get_backend_info()["search_engine"] == "redis"
    assert [v["content"] for v in found][:1] == ["the car brakes squeal"]
    await old.clear()
    for m in (old, plain, writer, searcher):
        await m.aclose()
