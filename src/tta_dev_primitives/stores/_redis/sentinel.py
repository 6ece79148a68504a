"""Redis Sentinel: a client of the primary Sentinel names, which finds the new one after a failover.

redis-py's Sentinel pool asks the sentinels for the primary's address each time it opens a
connection, and turns a demoted primary's ``READONLY`` into a connection error (dropping the
connection). But the connections it has keep the old primary, which after a failover may
still take writes for seconds before Sentinel demotes it, and lose them then; so after every
outage the seam asks again (``follow_primary``), and drops the connections if it moved.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from tta_dev_primitives.stores._urls import sentinel_target

__all__ = ["follow_primary", "reason", "sentinel_client", "sentinels_of"]


def sentinel_client(url: str, timeout: float, max_connections: int, common: dict[str, Any]) -> Any:
    """A client of the primary that the ``redis+sentinel://`` URL's sentinels name, with the
    connection options ``common`` (the seam's: no timeouts or retries of redis-py's own)."""
    target = sentinel_target(url)
    # The sentinels are asked in turn within one call's timeout: one that does not answer
    # must leave time to ask the next.
    each = timeout / (len(target.sentinels) + 1)
    asked = {
        "socket_timeout": each,
        "socket_connect_timeout": each,
        "retry": common["retry"],
        "health_check_interval": 0,
        "username": target.sentinel_username,
        "password": target.sentinel_password,
    }
    manager = Sentinel(target.sentinels, sentinel_kwargs=asked)
    pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        target.service, manager, db=target.db, username=target.username,
        password=target.password, max_connections=max_connections, **common,
    )  # fmt: skip
    return aioredis.Redis(connection_pool=pool)


def sentinels_of(client: Any) -> list[Any]:
    """The clients of the sentinels a Sentinel client asks (none for any other client)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return [] if manager is None else list(manager.sentinels)


async def follow_primary(client: Any) -> None:
    """Ask a Sentinel client's sentinels for the primary again; if it moved, close the idle
    connections now and those in use when they come back, so that every call goes to the new
    primary. Nothing for other clients, or when no sentinel answers (the next connection asks)."""
    if not isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool):
        return
    pool: Any = client.connection_pool  # (redis-py's Sentinel pool has no type hints)
    with contextlib.suppress(Exception):
        before = pool.master_address
        if await pool.get_master_address() != before:  # (which closes the idle ones)
            await pool.update_active_connections_for_reconnect()


def reason(exc: BaseException) -> str | None:
    """A short message for "no sentinel named a primary" (redis-py's holds each sentinel
    client's whole repr, a kilobyte or more): what each sentinel answered; None for others."""
    if not isinstance(exc, MasterNotFoundError):
        return None
    head, _, tail = str(exc).partition(" : ")
    answers = re.findall(r"> - (\w+)\(", tail)
    return head + (f" (the sentinels asked: {', '.join(answers)})" if answers else "")
