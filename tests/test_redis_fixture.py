"""The Redis test machinery itself works: a real server answers through redis.asyncio."""

from __future__ import annotations

import redis.asyncio as aioredis

from redis_server import RedisServer


async def test_session_server_answers_ping(redis_client: aioredis.Redis) -> None:
    """The session redis-server answers PING over redis.asyncio."""
    assert await redis_client.ping() is True


async def test_factory_server_can_be_killed_and_restarted(redis_server_factory) -> None:  # type: ignore[no-untyped-def]
    """A factory server restarted on the same port keeps AOF data written before the kill."""
    server: RedisServer = redis_server_factory(appendonly=True)
    client = aioredis.Redis.from_url(server.url)
    await client.set("k", "v")
    await client.aclose()
    server.restart()
    client = aioredis.Redis.from_url(server.url)
    assert await client.get("k") == b"v"
    await client.aclose()
