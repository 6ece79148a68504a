"""Whole-namespace work done a page per call, so that any size finishes within the timeout:
clearing (by version, or by SCAN + UNLINK) and listing."""

from __future__ import annotations

from typing import Any

from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.stores._redis.connection import Connection, text_of, values_and_ttls
from tta_dev_primitives.stores._redis.layout import LIVE, PARTITIONS_AT_ONCE, TOMBS, Layout

__all__ = ["Progress", "clear_partitions", "items_page", "unlink_namespace"]

_CLEAR_PAGE = 500  # keys a clear examines per call
_ITEMS_PAGE = 500  # memories items() reads per call


class Progress:
    """How far a bulk operation got (updated page by page)."""

    __slots__ = ("done", "noun")

    def __init__(self) -> None:
        self.done = 0
        self.noun = "memories"


async def clear_partitions(
    connection: Connection, layout: Layout, version: str, progress: Progress
) -> None:
    """Remove what is older than ``version`` from every partition, partitions concurrently."""
    await gather_all(
        *(_clear_partition(connection, base, version, progress) for base in layout.bases),
        at_most=PARTITIONS_AT_ONCE,
    )


async def _clear_partition(
    connection: Connection, base: str, version: str, progress: Progress
) -> None:
    facts = connection.declared(base)  # on a cluster, every key the scripts touch but values
    await connection.run_script("CLEAR_MARK", facts, [base, version])
    for zset in (LIVE, TOMBS):
        after = "-inf"
        while after:
            args = [base, version, zset, after, _CLEAR_PAGE]
            reply = await connection.run_script("CLEAR_PAGE", facts, args)
            after = text_of(reply[0])
            if zset == LIVE:
                progress.done += int(reply[1])
    # Written last, so once a replica has it (WAIT), it has every page before it as well.
    await connection.write("CLEAR_MARK", facts, [base, version])


async def unlink_namespace(connection: Connection, layout: Layout, progress: Progress) -> None:
    """SCAN + UNLINK the namespace's keys, a SCAN step and its UNLINKs per call.

    Never FLUSHDB, never KEYS. Keys are grouped by partition (one hash slot each), so an
    UNLINK never spans slots.
    """

    async def unlink(client: Any, keys: list[bytes]) -> None:
        batches: dict[bytes, list[bytes]] = {}
        for key in keys:
            batches.setdefault(Layout.partition_of_name(key), []).append(key)
        for batch in batches.values():
            await client.unlink(*batch)
        progress.done += len(keys)

    await connection.scan(layout.scan_pattern(), unlink)


async def items_page(client: Any, base: str, after: str) -> Any:
    """The next page of a partition's live memories after sequence ``after``.

    Returns ``(next after, or "" when done; [(key, payload, PTTL ms), ...])``; memories that
    expired or were deleted since they were indexed are left out.
    """
    start = after if after == "-inf" else "(" + after
    rows = await client.zrangebyscore(
        Layout.live(base), start, "+inf", start=0, num=_ITEMS_PAGE, withscores=True,
        score_cast_func=_raw,
    )  # fmt: skip
    keys = [key.decode() for key, _ in rows]
    names = [Layout.value_in(base, key) for key in keys]
    values = await values_and_ttls(client, names) if names else []
    found = [(key, payload, pttl) for key, (payload, pttl) in zip(keys, values, strict=True)
             if payload is not None]  # fmt: skip
    if len(rows) < _ITEMS_PAGE:
        return "", found
    last = rows[-1][1]
    return (last.decode() if isinstance(last, bytes) else str(last)), found


def _raw(score: Any) -> Any:
    """Keep a zset score as Redis sent it (a sequence in microseconds: exact, no float)."""
    return score
