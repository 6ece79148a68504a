"""Where a namespace's Query Engine index lives: one server, or each master of a cluster.

Without a coordinator the engine refuses (MOVED) an index whose name's slot another master
owns, so each master's index is named into a slot it owns (``Layout.master_index_name``). Also
the partitions' facts the engine keeps in their ``n`` hashes.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple

from tta_dev_primitives.exceptions import BackendError
from tta_dev_primitives.stores._redis.layout import Layout
from tta_dev_primitives.stores._redis.replies import as_dict, text

__all__ = [
    "Call",
    "Shard",
    "canonical_index",
    "each_partition",
    "facts",
    "has_vectors",
    "index_docs",
    "index_info",
    "mark",
    "master_index",
    "own_slots",
    "owns",
    "redirected",
    "still_owned",
]

Call = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
#: Names tried per master for an index whose slot it owns: the first 109,758 hash tags
#: (``{0}`` to ``{109757}``, whatever the namespace) cover all 16,384 slots, so any master,
#: one that owns a single slot too, has one (100,000 left 112 slots without: a master given
#: only one of those, as a reshard onto a new master does first, failed every search). A
#: master owning ``k`` slots needs about 16,384 / k tries (~2 us each).
MAX_TAG_TRIES: Final = 109_758


class Shard(NamedTuple):
    """Where one index lives: a cluster master (None on a single server) and its name there,
    and each query's time limit there (``QueryEngine.timeout_ms``)."""

    node: Any
    name: str
    timeout_ms: int = 0

    @property
    def tail(self) -> tuple[Any, ...]:
        """How every query on this index ends: its ``TIMEOUT`` (0: the server's own), then the
        dialect.

        A server's own limit (500 ms as shipped) with ``ON_TIMEOUT RETURN`` hands back what
        was found so far as if it were all, and the ranking silently differs; a limit past the
        client's own timeout means a query is either answered whole or not waited for.
        """
        if self.timeout_ms:
            return ("TIMEOUT", self.timeout_ms, "DIALECT", 2)
        return ("DIALECT", 2)

    async def run(self, client: Any, *args: Any) -> Any:
        """A command on this index's server (the index name is the caller's to place)."""
        if self.node is None:
            return await client.execute_command(*args)
        return await client.execute_command(*args, target_nodes=self.node)

    async def script(self, client: Any, source: str, *args: Any) -> Any:
        """A keyless script (``master_scripts``) on this index's server: by its SHA1, sent
        whole only when the server has not got it."""
        from redis import exceptions as rexc

        try:
            return await self.run(client, "EVALSHA", _sha1(source), 0, *args)
        except rexc.NoScriptError:
            return await self.run(client, "EVAL", source, 0, *args)


@functools.cache
def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def master_index(
    client: Any, namespace: str, node: Any, naming: Callable[[str, int], str] | None = None
) -> str:
    """The first ``Layout.master_index_name`` (or ``naming``) whose slot ``node`` owns: every
    process finds the same one."""
    naming = naming or Layout.master_index_name
    for n in range(MAX_TAG_TRIES):
        name = naming(namespace, n)
        owner = client.get_node_from_key(name)
        if owner is not None and owner.name == node.name:
            return name
    raise BackendError(f"found no index name whose slot cluster node {node.name} owns")


def redirected(exc: Exception) -> bool:
    """True for a MOVED or ASK reply: the key's slot is another master's now."""
    from redis import exceptions as rexc

    return isinstance(exc, rexc.AskError) or str(exc).upper().startswith(("MOVED", "ASK"))


async def own_slots(node: Any) -> list[tuple[int, int]] | None:
    """The slot ranges ``node`` itself says it serves as a master (its ``CLUSTER NODES``
    line for itself; none if it is a replica now), asked of it alone, not through the
    client's slot map, which lags a failover; None if the server will not say."""
    from redis import exceptions as rexc

    try:
        reply = await node.execute_command("CLUSTER", "NODES")
    except rexc.NoPermissionError:  # (an ACL without +cluster|nodes)
        return None
    except rexc.ResponseError as exc:
        if "unknown command" in str(exc).lower():  # (a managed cluster may rename it)
            return None
        raise
    for line in text(reply).splitlines():
        fields = line.split()
        if len(fields) < 8 or "myself" not in fields[2].split(","):
            continue
        if "master" not in fields[2].split(","):
            return []
        ranges = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being imported or migrated: not (yet) its own
                continue
            low, _, high = part.partition("-")
            ranges.append((int(low), int(high or low)))
        return ranges
    return None


def owns(ranges: list[tuple[int, int]], name: str) -> bool:
    """True if the slot of key ``name`` lies in ``ranges``."""
    from redis.crc import key_slot

    slot = key_slot(name.encode())
    return any(low <= slot <= high for low, high in ranges)


def canonical_index(namespace: str, ranges: list[tuple[int, int]]) -> str | None:
    """``master_index`` as the master owning ``ranges`` sees it: the name every process that
    knows the current slot map uses for its index."""
    for n in range(MAX_TAG_TRIES):
        name = Layout.master_index_name(namespace, n)
        if owns(ranges, name):
            return name
    return None


async def _ft_info(client: Any, shard: Shard) -> dict[str, Any]:
    """``FT.INFO`` of one server's index, as a dict; a redirection (the index name's slot moved
    to another master: the layout changed) is raised as ``SlotsMoved``."""
    from redis import exceptions as rexc

    from tta_dev_primitives.stores._redis.errors import SlotsMoved

    try:
        reply = await shard.run(client, "FT.INFO", shard.name)
    except rexc.ResponseError as exc:
        if redirected(exc):
            raise SlotsMoved(f"the cluster's slots moved: {exc}") from None
        raise
    return as_dict(reply)


async def index_info(client: Any, shard: Shard) -> dict[str, Any] | None:
    """One server's index: ``{"exists", "dims", "indexing", "docs", "names"}`` (``docs``:
    ``num_docs``; ``names``: it has the ``w`` field, which indexes made before form 6 lack);
    None without an engine there (or not one this user may use)."""
    from redis import exceptions as rexc

    try:
        fields = await _ft_info(client, shard)
    except rexc.ResponseError as exc:
        message = str(exc).lower()
        if "unknown index" in message or "no such index" in message:
            return {"exists": False, "dims": None, "indexing": False, "docs": 0, "names": False}
        if "unknown command" in message or "noperm" in message or "permission" in message:
            return None
        raise
    dims = None
    names = False
    for attribute in fields.get("attributes", []):
        attr = as_dict(attribute)
        identifier = text(attr.get("identifier", ""))
        if identifier == "e":
            dims = int(attr.get("dim", attr.get("DIM", 0)) or 0) or None
        names = names or identifier == "w"
    indexing = int(float(text(fields.get("indexing", 0)) or 0)) != 0
    docs = _num_docs(fields)
    return {"exists": True, "dims": dims, "indexing": indexing, "docs": docs, "names": names}


async def index_docs(client: Any, shard: Shard) -> int:
    """The documents one server's index holds (``FT.INFO``'s ``num_docs``)."""
    return _num_docs(await _ft_info(client, shard))


def _num_docs(fields: dict[str, Any]) -> int:
    """``num_docs`` of an ``FT.INFO`` reply, as an int (read through ``float``, as sent)."""
    return int(float(text(fields.get("num_docs", 0)) or 0))


def still_owned(client: Any, layout: tuple[tuple[str, ...], list[Shard]]) -> bool:
    """True while the cluster has the same masters, each owning its index's slot."""
    masters = tuple(sorted(node.name for node in client.get_primaries()))
    if masters != layout[0]:
        return False
    for shard in layout[1]:
        owner = client.get_node_from_key(shard.name)
        if owner is None or owner.name != shard.node.name:
            return False
    return True


async def each_partition(
    client: Any, bases: list[str], command: Callable[[str], tuple[Any, ...]]
) -> list[Any]:
    """``command(base)`` for every partition, in one pipeline: a round trip per server, not
    per partition. A set-up sent 64 in a row for each fact it read or wrote; on a busy cluster
    being resharded that took it past a second."""
    from tta_dev_primitives.stores._redis.connection import pipeline

    pipe = pipeline(client)
    for base in bases:
        pipe.execute_command(*command(base))
    return list(await pipe.execute())


async def mark(client: Any, bases: list[str], field: str, value: str) -> None:
    """Set a fact in every partition's ``n`` hash."""
    await each_partition(client, bases, lambda base: ("HSET", Layout.facts(base), field, value))


async def facts(client: Any, bases: list[str], field: str) -> list[str | None]:
    """One fact of every partition."""
    values = await each_partition(client, bases, lambda base: ("HGET", Layout.facts(base), field))
    return [None if v is None else text(v) for v in values]


async def has_vectors(client: Any, bases: list[str]) -> bool:
    """True if any partition stores embeddings."""
    return any(await each_partition(client, bases, lambda base: ("HLEN", Layout.vectors(base))))
