"""A write that returns has reached every replica in sync, when its master has any (``WAIT n``).

Replication is asynchronous: a write the master acknowledged but had not yet sent to a replica
dies with it in a failover (a cluster's, or a managed primary's). So a write script whose
master has replicas in sync is sent with ``WAIT n`` after it (n: how many), in one pipeline.
Every one, not one: with two, a write only one had was lost when the other was promoted and
the first resynced from it (review R27, ``SENTINEL FAILOVER`` under writers). WAIT counts
the writes of its own connection, and redis-py's pools hand out connections in turn, so a WAIT
sent apart could return at once for another connection's older write. On a cluster every
write script goes to the master the decision was about, in a pipeline that does not follow
redirections (a MOVED reads the slot map again and sends the write once more), so that it
cannot land on another master, unwaited for.

Which masters have a replica: each is asked (``ROLE``, which lists only the replicas in sync)
at most every ``REPLICA_RECHECK`` seconds. Not redis-py's slot map: Redis lists a replica there
only once it has replicated something (a new cluster, a new shard), and it lists one still in
its full sync, which WAIT does not count. A Redis user without ``+role`` makes a cluster
go by the map (read again for a master it shows alone), and a standalone server write without
waiting, with a warning once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from tta_dev_primitives.stores._redis import errors

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


def confirm(acked: Any, needed: int = 1) -> None:
    """Raise unless ``WAIT`` answered that ``needed`` replicas have the writes before it."""
    if isinstance(acked, Exception):
        raise acked
    try:
        count = int(acked)
    except (TypeError, ValueError):  # not Redis's answer (a proxy's): nothing is confirmed
        raise rexc.InvalidResponse(f"WAIT answered {str(acked)[:40]!r}") from None
    if count < needed:
        raise rexc.TimeoutError(f"{count} of {needed} replicas confirmed the write (WAIT)")


class ReplicaWait:
    """Write scripts followed by ``WAIT n`` when their master has n replicas; see the module."""

    __slots__ = ("_known", "_map_read", "_role_refused", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._known: dict[str, tuple[float, int]] = {}  # master -> (when asked, replicas)
        self._role_refused = False  # the Redis user lacks +role
        self._map_read = -REPLICA_RECHECK  # when the slot map was last read again for replicas

    async def write(self, client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run the registered ``script`` on ``keys``; if its master has a replica, return only
        once one confirms the write, and raise ``TimeoutError`` if none does within 80% of the
        timeout (the write then counts as failed: the hybrid journals it and replays it,
        idempotently)."""
        loaded = remapped = False  # each cure once: a failover can need both, in turn
        while True:
            target, needed = await self._decide(client, keys[0])
            master = target if needed else None
            # On a cluster the script goes to the node this decision was about, not where
            # redis-py's routing says by then (a refresh due, a MOVED it would follow): there
            # the WAIT would count nothing, or a master with a replica would not be waited on.
            if target is None and isinstance(client, RedisCluster):  # (a refresh keeps every
                # slot covered, so not seen): a plain call would follow MOVED, unwaited for
                raise rexc.SlotNotCoveredError(f"no master in the slot map for {keys[0]!r}")
            if target is None:  # standalone without a replica
                return await script(keys=keys, args=args)
            replies = await self._send(client, script, keys, args, target, master, needed)
            reply = replies[0]
            # Nothing ran. NOSCRIPT: the server lost its script cache (a restart, SCRIPT FLUSH,
            # or a replica just promoted: scripts are not replicated). MOVED: the slot has a new
            # owner (a failover, a finished resharding) since the slot map was read. After a
            # failover the write meets MOVED, then NOSCRIPT on the new owner.
            if isinstance(reply, rexc.NoScriptError) and not loaded:
                if target is True:
                    await client.script_load(script.script)
                else:
                    # On that master alone: a cluster client's SCRIPT LOAD goes to every
                    # master, and one of them stalled held this write for its whole timeout.
                    await client.execute_command("SCRIPT LOAD", script.script, target_nodes=target)
                loaded = True
                continue
            if isinstance(reply, rexc.MovedError) and not remapped:
                await client.nodes_manager.initialize()
                remapped = True
                continue
            if isinstance(reply, rexc.MovedError):  # the map read again was still stale
                raise rexc.TryAgainError(f"the slot of {keys[0]!r} moved again ({reply})")
            if isinstance(reply, rexc.AskError):  # a slot on its way (resharding): an outage
                raise rexc.TryAgainError(f"the slot of {keys[0]!r} is moving ({reply})")
            if isinstance(reply, Exception):
                raise reply
            if master is not None:
                confirm(replies[1], needed)
            return reply

    async def _send(
        self,
        client: Any,
        script: Any,
        keys: list[str],
        args: list[Any],
        target: Any,
        master: Any,
        needed: int,
    ) -> list[Any]:
        """The script's reply (an error as a value), and WAIT's when ``master`` is given: one
        pipeline on one connection of ``target`` (True: a standalone server)."""
        # On a cluster, a pipeline even of the script alone: a plain call with ``target_nodes``
        # still follows MOVED (to a master with a replica, unwaited for). 5-8% more per add
        # on a cluster without replicas than a plain call. It relies on the client making no
        # retries (``Connection``): a retried send routes each command anew, the script by its
        # key and WAIT to any master (test_the_cluster_client_never_resends_a_pipeline).
        where = {} if target is True else {"target_nodes": target}
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **where)
            if master is not None:
                self.queue_wait(pipe, master, needed)
            if target is True:
                return list(await pipe.execute(raise_on_error=False))
            return list(await pipe.execute(raise_on_error=False, allow_redirections=False))

    def queue_wait(self, pipe: Any, master: Any, needed: int) -> None:
        """Queue ``WAIT needed`` on ``pipe``, after its writes to ``master`` (see ``confirm``)."""
        wait_ms = max(1, int(self._timeout * 1000 * 0.8))
        if master is True:
            pipe.execute_command("WAIT", needed, wait_ms)
        else:
            pipe.execute_command("WAIT", needed, wait_ms, target_nodes=master)

    async def master_with_replica(self, client: Any, name: str) -> tuple[Any, int]:
        """(The master of key ``name``, how many replicas it has in sync) if it has any (a
        cluster node, or True on a standalone server), else (None, 0)."""
        target, needed = await self._decide(client, name)
        return (target, needed) if needed else (None, 0)

    async def _decide(self, client: Any, name: str) -> tuple[Any, int]:
        """(Where a write of key ``name`` goes, how many replicas it waits for there): on a
        cluster the master the slot map names (None if it names none), on a standalone server
        True if it has a replica in sync (else None)."""
        if not isinstance(client, RedisCluster):
            found = await self._replicas(client, None, 0)
            return (True, found) if found else (None, 0)
        slot = client.keyslot(name)
        nodes = client.nodes_manager.slots_cache.get(slot, [])
        if not nodes:
            return None, 0
        # ROLE, not the map's count: the map lists a replica as soon as it is one, still in
        # its full sync (a master a reshard emptied becomes the replica of the one that took
        # its last slot), and every write there, replays too, failed on WAIT until it synced.
        return nodes[0], await self._replicas(client, nodes[0], slot)

    async def _replicas(self, client: Any, node: Any, slot: int) -> int:
        """How many replicas in sync cluster ``node``, the master of ``slot`` (or, for None, a
        standalone server), has, by ``ROLE``, kept ``REPLICA_RECHECK`` s; where ROLE is
        refused, by the slot map (``_by_map``)."""
        now = time.monotonic()
        name = "" if node is None else node.name
        known = self._known.get(name)
        if known is not None and now - known[0] < REPLICA_RECHECK:
            return known[1]
        if self._role_refused:
            return await self._by_map(client, slot) if node is not None else 0
        try:
            if node is None:
                role = await client.execute_command("ROLE")
            else:
                role = await client.execute_command("ROLE", target_nodes=node)
        except rexc.ResponseError as exc:  # NOPERM, or a proxy that renamed, hid or refused ROLE
            # Only a reply that means "cannot serve now" (LOADING, BUSY...) is an outage; any
            # other refusal of ROLE (a proxy's "unsupported command") must not fail every write.
            if not isinstance(exc, rexc.NoPermissionError) and errors.unavailable(str(exc)):
                raise
            if not self._role_refused:  # (writes in flight asked at once: warned once)
                self._role_refused = True
                instead = "they do not wait" if node is None else (
                    "they wait only for the replicas the slot map lists, and it lists one only "
                    "once it has replicated something"
                )  # fmt: skip
                log.warning(
                    "Redis refused ROLE (%s), which tells writes whether a master has a replica "
                    "to wait for (WAIT 1): %s, so a failover may lose the last ones; grant +role "
                    "(docs/production.md, ACL)",
                    type(exc).__name__, instead,
                )  # fmt: skip
            return await self._by_map(client, slot) if node is not None else 0
        found = replicas_in_sync(role)
        self._known[name] = (now, found)
        return found

    async def _by_map(self, client: Any, slot: int) -> int:
        """Without ``ROLE``: whether the slot map lists a replica for ``slot``, read again (at
        most every ``REPLICA_RECHECK`` seconds) if it lists none. Writes in flight when ROLE
        was first refused each came here; those after the first read skipped their WAIT,
        however many replicas the map listed (a review)."""
        listed = len(client.nodes_manager.slots_cache.get(slot, [])) - 1
        if listed > 0:
            return listed
        return await self._listed_after_rereading(client, slot)

    async def _listed_after_rereading(self, client: Any, slot: int) -> int:
        """Read the slot map again (at most every ``REPLICA_RECHECK`` seconds); whether it now
        lists a replica for ``slot``. A failed read leaves the map as it was."""
        now = time.monotonic()
        if now - self._map_read < REPLICA_RECHECK:
            return 0
        self._map_read = now
        try:
            await client.nodes_manager.initialize()
        except (rexc.RedisError, OSError):
            return 0
        return max(len(client.nodes_manager.slots_cache.get(slot, [])) - 1, 0)
