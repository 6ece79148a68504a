"""After a cluster write, wait until a replica has it (``WAIT 1``) when the master has one.

Cluster replication is asynchronous: a write the master acknowledged but had not yet sent to a
replica dies with it in a failover. Which masters have a replica is read from redis-py's slot
map when it lists one; but Redis lists a replica there only once it has replicated something,
so on a new cluster (or a new shard) the first writes would skip the wait. For a master the map
shows alone, the master itself is asked (``ROLE``, which lists only replicas in sync), at most
every ``REPLICA_RECHECK`` seconds. A Redis user without ``+role`` makes this fall back to
reading the slot map again, with a warning once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import exceptions as rexc

log = logging.getLogger("tta_dev_primitives.memory")

#: How long, at most, an answer to "has this master a replica?" is kept (``ROLE``, or the slot
#: map read again when ``ROLE`` is refused) before a write asks again.
REPLICA_RECHECK = 1.0


def replicas_in_sync(role: Any) -> int:
    """How many replicas a master's ``ROLE`` reply lists (0 for any other reply)."""
    if not isinstance(role, (list, tuple)) or len(role) < 3 or not isinstance(role[2], list):
        return 0
    kind = role[0].decode() if isinstance(role[0], bytes) else role[0]
    return len(role[2]) if kind == "master" else 0


class ReplicaWait:
    """``WAIT 1`` after each cluster write to a master with a replica; see the module."""

    __slots__ = ("_known", "_map_read", "_role_refused", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._known: dict[str, tuple[float, bool]] = {}  # master -> (when asked, has replica)
        self._role_refused = False  # the Redis user lacks +role: read the slot map instead
        self._map_read = -REPLICA_RECHECK  # when the slot map was last read again for replicas

    async def after_write(self, client: Any, name: str) -> None:
        """Wait until a replica of ``name``'s master has the write, if the master has one;
        raise ``TimeoutError`` if none confirms within 80% of the timeout."""
        slot = client.keyslot(name)
        nodes = client.nodes_manager.slots_cache.get(slot, [])
        if not nodes:
            return
        if len(nodes) < 2 and not await self._has_replica(client, slot, nodes[0]):
            return
        wait_ms = max(1, int(self._timeout * 1000 * 0.8))
        acked = await client.execute_command("WAIT", 1, wait_ms, target_nodes=nodes[0])
        if int(acked) < 1:
            raise rexc.TimeoutError("no replica confirmed the write (WAIT)")

    async def _has_replica(self, client: Any, slot: int, master: Any) -> bool:
        """Whether ``master``, which the slot map shows alone, has a replica in sync."""
        now = time.monotonic()
        known = self._known.get(master.name)
        if known is not None and now - known[0] < REPLICA_RECHECK:
            return known[1]
        if self._role_refused:
            return await self._listed_after_rereading(client, slot)
        try:
            role = await client.execute_command("ROLE", target_nodes=master)
        except rexc.ResponseError as exc:  # NOPERM, or a proxy that renamed or hid ROLE
            if not isinstance(exc, rexc.NoPermissionError) and "unknown command" not in str(exc):
                raise
            self._role_refused = True
            log.warning(
                "Redis refused ROLE (%s): writes wait (WAIT 1) only for the replicas the "
                "cluster's slot map lists, and it lists one only once it has replicated "
                "something; grant +role (docs/production.md, ACL)",
                type(exc).__name__,
            )
            return await self._listed_after_rereading(client, slot)
        found = replicas_in_sync(role) > 0
        self._known[master.name] = (now, found)
        return found

    async def _listed_after_rereading(self, client: Any, slot: int) -> bool:
        """Read the slot map again (at most every ``REPLICA_RECHECK`` seconds); whether it now
        lists a replica for ``slot``. A failed read leaves the map as it was."""
        now = time.monotonic()
        if now - self._map_read < REPLICA_RECHECK:
            return False
        self._map_read = now
        try:
            await client.nodes_manager.initialize()
        except (rexc.RedisError, OSError):
            return False
        return len(client.nodes_manager.slots_cache.get(slot, [])) > 1
