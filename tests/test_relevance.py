"""Search quality on a public test collection with human judgments (Cranfield 1400).

Relevance is deterministic, so unlike speed it is asserted here: the defaults must stay at
least as good as the BM25 engines users compare us with (bm25s with stop words and stemming:
nDCG@10 .373-.375, recall@100 .738-.747 on the same judgments), and Redis must rank exactly
as in-process. ``benchmarks/bench_relevance.py`` prints the same figures beside the peers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from uuid import uuid4

import pytest

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_relevance as cranfield

DATA = cranfield.load()


async def ranked(memory: MemoryPrimitive) -> dict[int, list[str]]:
    await cranfield.ours_index(memory, DATA.docs)
    return {qid: await cranfield.ours_search(memory, text) for qid, text in DATA.queries}


async def test_default_search_is_as_relevant_as_the_best_bm25_engine() -> None:
    """Cranfield nDCG@10 >= .375 and recall@100 >= .747 with the default analyzer."""
    memory = MemoryPrimitive(max_size=len(DATA.docs))
    ndcg, recall, _ = cranfield.score(await ranked(memory), DATA.qrels)
    assert ndcg >= 0.375, ndcg
    assert recall >= 0.747, recall


@pytest.mark.redis
async def test_redis_ranks_cranfield_exactly_like_in_process(redis_server: RedisServer) -> None:
    """All 225 questions: the same 100 keys in the same order on Redis as in-process."""
    local = await ranked(MemoryPrimitive(max_size=len(DATA.docs)))
    memory = MemoryPrimitive(redis_server.url, namespace=f"cran:{uuid4().hex[:8]}")
    try:
        remote = await ranked(memory)
        assert memory.using_redis
        assert remote == local
    finally:
        await memory.clear()
        await memory.aclose()
