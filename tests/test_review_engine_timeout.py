"""Review: each Query Engine query's ``TIMEOUT`` (``query_timeout_ms``) on a real server.

RediSearch 2.10 keeps ``TIMEOUT`` in 32 bits: 2**31 ms or more wraps (2**31 and 2**32 - 1
time out at once, 2**32 + 100 allows 100 ms). ``redis_timeout`` accepts any finite number of
seconds, and one of about 16.6 days or more (say 30 days, for "never give up") made every
engine query fail at once, or be cut short after a few milliseconds.
"""

from __future__ import annotations

import pytest

from conftest import namespace
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis.query_engine import query_timeout_ms

pytestmark = pytest.mark.redis

MONTH = 30 * 24 * 3600.0


def test_a_query_timeout_fits_the_engines_32_bits() -> None:
    for seconds in (0.001, 1.0, 1_431_655.0, MONTH, 1e9, 1e300):
        assert 0 < query_timeout_ms(seconds) < 2**31


async def test_a_month_long_redis_timeout_searches_in_the_engine(
    redis_query_engine: RedisServer,
) -> None:
    memory = MemoryPrimitive(
        redis_query_engine.url, namespace=namespace(), search_engine="redis",
        redis_timeout=MONTH, load_timeout=MONTH,
    )  # fmt: skip
    await memory.add("u1:s1:1", {"content": "the garden gate squeaks"})
    found = await memory.search("garden gate", limit=3)
    assert [v["content"] for v in found] == ["the garden gate squeaks"]
    assert memory.get_backend_info()["search_engine"] == "redis"
    await memory.clear()
    await memory.aclose()
