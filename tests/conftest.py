"""Session fixtures: a real ``redis-server`` on a free loopback port, and a factory for more.

Under ``CI=true`` a missing ``redis-server`` fails the run; elsewhere Redis tests are skipped
with a message saying how to install it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from redis_server import RedisServer, find_redis_server

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path to redis-server, or skip (fail under CI=true) when it is not installed."""
    binary = find_redis_server()
    if binary is None:
        message = "redis-server is not installed (scripts/test installs it when run as root)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """One throwaway server for the whole session (no persistence)."""
    server = RedisServer(redis_binary).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(redis_binary: str) -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (to kill, stall, restart); all are stopped after the test."""
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(redis_binary, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw redis.asyncio client on a flushed session server, closed after the test."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()
