"""Closing a client's connections: politely, at once without waiting, or without its loop."""

from __future__ import annotations

import contextlib
from typing import Any

from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from tta_dev_primitives.stores._redis.errors import UNAVAILABLE
from tta_dev_primitives.stores._redis.sentinel import sentinels_of

__all__ = ["abandon", "close_client", "drop_sockets"]


async def close_client(client: Any) -> None:
    """Close ``client`` and its pool on the running loop (its own); if that fails part-way,
    what is left is abandoned, so no socket outlives the client."""
    try:
        if isinstance(client, RedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)
            for sentinel in sentinels_of(client):
                await sentinel.aclose(close_connection_pool=True)
    except (*UNAVAILABLE, rexc.RedisError):
        abandon(client)  # closing a dead connection: release what is left at once
    except BaseException:
        abandon(client)  # cancelled or timed out while closing
        raise


def _connections(client: Any) -> list[Any]:
    """Every connection ``client`` holds, a cluster's startup nodes and the sentinels it asks
    included."""
    if isinstance(client, RedisCluster):
        manager = client.nodes_manager
        nodes = [*manager.nodes_cache.values(), *manager.startup_nodes.values()]
        return [c for node in nodes for c in getattr(node, "_connections", [])]
    pools = [client.connection_pool, *(s.connection_pool for s in sentinels_of(client))]
    return [c for pool in pools for c in (*pool._available_connections, *pool._in_use_connections)]


def _closed(client: Any) -> None:
    """Mark ``client`` closed, so redis-py's finaliser does not warn about it."""
    if isinstance(client, RedisCluster):
        client.nodes_manager.default_node = None  # type: ignore[assignment]


def abandon(client: Any) -> None:
    """Close ``client``'s connections now, on its own running loop, without waiting for Redis.

    For a client dropped mid-connect (the call's timeout cancelled it) or one whose close
    timed out: its transports are aborted, which the loop finishes on its next turn.
    """
    if client is None:
        return
    for connection in _connections(client):
        writer = getattr(connection, "_writer", None)
        with contextlib.suppress(Exception):
            transport: Any = getattr(writer, "transport", None)
            if transport is not None:
                transport.abort()
        connection._reader = connection._writer = None
    _closed(client)


def drop_sockets(client: Any) -> None:
    """Close the sockets of a client whose event loop is closed, without that loop.

    Its transports cannot be closed the usual way (that schedules on the loop), so the socket
    is closed and the transport and connection marked closed: no ResourceWarning later.
    """
    if client is None:
        return
    for connection in _connections(client):
        writer = getattr(connection, "_writer", None)
        transport: Any = getattr(writer, "transport", None)
        with contextlib.suppress(Exception):
            sock = getattr(transport, "_sock", None)
            if sock is not None:
                sock.close()
                transport._sock = None
            if transport is not None:
                transport._closing = True
        connection._reader = connection._writer = None
    _closed(client)
