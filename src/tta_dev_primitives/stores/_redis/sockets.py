"""Closing a client's connections, also when the event loop it belongs to is gone."""

from __future__ import annotations

import contextlib
from typing import Any

from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from tta_dev_primitives.stores._redis.errors import UNAVAILABLE

__all__ = ["close_client", "drop_sockets"]


async def close_client(client: Any) -> None:
    """Close ``client`` and its pool on the running loop (its own)."""
    try:
        if isinstance(client, RedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)
    except (*UNAVAILABLE, rexc.RedisError):
        pass  # closing a dead connection: nothing left to release


def drop_sockets(client: Any) -> None:
    """Close the sockets of a client whose event loop is closed, without that loop.

    Its transports cannot be closed the usual way (that schedules on the loop), so the socket
    is closed and the transport and connection marked closed: no ResourceWarning later.
    """
    if client is None:
        return
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes()
        connections = [c for node in nodes for c in getattr(node, "_connections", [])]
    else:
        pool = client.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
    for connection in connections:
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
