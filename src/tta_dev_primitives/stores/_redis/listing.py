"""Listing a scope's memories on Redis, newest write first, in bounded pages.

Each partition keeps its live keys by write sequence (``r``) and, since per-user feeds, each
first segment's (``r:<seg>``): a scope reads its user's feed (a whole partition's only where a
partition predates those feeds), in only its own partition when the scope names one
(``user:session``). Pages of every partition are merged newest first; the position is the
last ``(sequence, key)`` returned, so a listing resumes in any process.
"""

from __future__ import annotations

from typing import Any, Final

from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.search._scopes import first_segment, in_scope
from tta_dev_primitives.stores._redis.connection import Connection, mget, text_of
from tta_dev_primitives.stores._redis.layout import FACT_SEGMENTS, LIVE, PARTITIONS_AT_ONCE, Layout

__all__ = ["READ", "scope_page"]

#: Members one ZREVRANGEBYSCORE reads: a call that filters a partition's feed by scope stays
#: short, and a page that needs more reads again.
READ: Final = 500
#: Reads per partition per page: a page over a feed that holds few of the scope's keys returns
#: what it found, with ``more``, instead of reading the whole feed in one call.
MAX_READS: Final = 20

Position = tuple[int, str]


async def scope_page(
    connection: Connection,
    layout: Layout,
    segmented: set[str],
    scope: str | None,
    after: Position | None,
    limit: int,
) -> tuple[list[tuple[str, Any, int]], Position | None]:
    """Up to ``limit`` live ``(key, payload, sequence)`` of ``scope`` (None: every memory),
    newest write first and strictly after ``after`` in that order; and the position to go on
    from (None when the listing is done). A page may hold fewer than ``limit`` (memories that
    expired, or a partition whose feed holds few of the scope's keys) and still go on.

    ``segmented`` remembers the partitions known to keep per-user feeds (they keep them).
    """
    one = layout.scope_base(scope)  # "user:session" and deeper: one partition holds it all
    bases = list(layout.bases) if one is None else [one]
    if scope is not None:
        unknown = [base for base in bases if base not in segmented]
        if unknown:
            flags = await connection.call(lambda c: _segment_flags(c, unknown))
            segmented.update(base for base, flag in zip(unknown, flags, strict=True) if flag)
    found: list[tuple[int, str, str]] = []
    stops: list[Position] = []

    async def read(base: str) -> None:
        feed = base + LIVE
        if scope is not None and base in segmented:
            feed += ":" + first_segment(scope)
        rows, stop = await connection.call(lambda c: _rows(c, feed, scope, after, limit))
        found.extend((seq, key, base) for key, seq in rows)
        if stop is not None:
            stops.append(stop)

    await gather_all(*(read(base) for base in bases), at_most=PARTITIONS_AT_ONCE)
    found.sort(reverse=True)
    # A partition that stopped early may hold more above older rows of the others: only rows
    # up to the newest stop (each partition read everything newer than its own stop) are
    # certain to come in this order.
    floor = max(stops) if stops else None
    if floor is not None:
        found = [row for row in found if (row[0], row[1]) >= floor]
    following: Position | None = floor
    if len(found) > limit:
        found = found[:limit]
        following = (found[-1][0], found[-1][1])
    names = [Layout.value_in(base, key) for _, key, base in found]
    payloads = await connection.call(lambda c: mget(c, names)) if names else []
    page = [
        (key, payload, seq)
        for (seq, key, _), payload in zip(found, payloads, strict=True)
        if payload is not None  # expired or deleted since the feed was read
    ]
    return page, following


async def _segment_flags(client: Any, bases: list[str]) -> list[bool]:
    values = [await client.hget(Layout.facts(base), FACT_SEGMENTS) for base in bases]
    return [value is not None for value in values]


async def _rows(
    client: Any, feed: str, scope: str | None, after: Position | None, want: int
) -> tuple[list[tuple[str, int]], Position | None]:
    """``(key, sequence)`` of ``scope`` in ``feed``, newest first, below ``after``; and the
    position of the last row read if the feed may hold more (``want`` found, or ``MAX_READS``
    reads spent), else None."""
    top = "+inf" if after is None else str(after[0])
    found: list[tuple[str, int]] = []
    for _ in range(MAX_READS):
        rows = await client.zrevrangebyscore(
            feed, top, "-inf", start=0, num=READ, withscores=True, score_cast_func=_exact
        )
        last: Position | None = None
        for member, score in rows:
            key, seq = text_of(member), _sequence(score)
            last = (seq, key)
            if after is not None and last >= after:
                continue  # at or before the position (sequences are unique within a feed)
            if in_scope(key, scope):
                found.append((key, seq))
        if len(rows) < READ or last is None:
            return found, None
        if len(found) >= want:
            return found, last
        top = "(" + str(last[0])
    return found, last


def _exact(score: Any) -> Any:
    """A zset score as Redis sent it (RESP2 text: a sequence of microseconds, exactly)."""
    return score


def _sequence(score: Any) -> int:
    """A sequence from a score, RESP2 text or RESP3 double (exact below 2**53)."""
    return (
        int(score)
        if isinstance(score, int)
        else int(float(text_of(score) if isinstance(score, bytes | str) else score))
    )
