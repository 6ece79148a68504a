"""A scope's memories as a whole: listing them newest first, and forgetting them.

Both walk the scope in pages through the store's ``scope_page`` (on Redis: the user's feed,
never the whole namespace; see ``stores._redis.listing``). A page's position is an opaque
cursor string that names the backend it came from, so a listing begun on Redis is never
silently continued on the in-process copy during an outage.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, NamedTuple

from tta_dev_primitives.exceptions import IncompleteOperationError, InvalidArgumentError
from tta_dev_primitives.stores._hybrid import SearchableHybrid

__all__ = ["FORGET_PAGE", "MemoryPage", "decode_cursor", "encode_cursor", "forget", "page"]

#: Memories ``forget`` deletes per page (their deletes run concurrently).
FORGET_PAGE: Final = 500

Position = tuple[int, str]
_SEQUENCE_DIGITS: Final = 20


class MemoryPage(NamedTuple):
    """A page of ``list_memories``: ``(key, value)`` pairs, newest write first, and the cursor
    of the next page (None when this was the last)."""

    items: list[tuple[str, dict[str, Any]]]
    cursor: str | None


def encode_cursor(backend: str, position: Position | None) -> str | None:
    """``<backend>|<sequence>|<key>``, or None at the end."""
    return None if position is None else f"{backend}|{position[0]}|{position[1]}"


def decode_cursor(cursor: Any) -> tuple[str, Position] | None:
    """The backend and position a cursor names; a clear error for anything else."""
    if cursor is None:
        return None
    if not isinstance(cursor, str):
        raise InvalidArgumentError(
            f"cursor must be a str from list_memories or None, got {cursor!r}"
        )
    parts = cursor.split("|", 2)
    # ASCII digits only: ``isdigit`` also takes "²" (which ``int`` refuses) and "١٢" (which it
    # reads as 12). No store numbers its writes past 20 digits (Redis's: microseconds, 16).
    sequence = parts[1] if len(parts) == 3 else ""
    if not (sequence.isascii() and sequence.isdigit() and len(sequence) <= _SEQUENCE_DIGITS):
        raise InvalidArgumentError(f"cursor {cursor[:80]!r} did not come from list_memories")
    return parts[0], (int(parts[1]), parts[2])


async def page(
    store: SearchableHybrid, scope: str | None, limit: int, cursor: str | None
) -> tuple[list[tuple[str, Any]], str | None, Any]:
    """One page: ``(key, payload)`` pairs, the next cursor, and the ``Served`` it came from."""
    start = decode_cursor(cursor)
    served = await store.scope_page(scope, None if start is None else start[1], limit)
    if start is not None and start[0] != served.backend:
        raise InvalidArgumentError(
            f"this cursor continues a listing from {start[0]!r}, but the memory is served by "
            f"{served.backend!r} now (Redis failed or came back): list again from the start"
        )
    rows, following = served.value
    return (
        [(key, payload) for key, payload, _ in rows],
        encode_cursor(served.backend, following),
        served,
    )


async def forget(store: SearchableHybrid, scope: str) -> int:
    """Delete every memory in ``scope``, page by page; how many there were.

    Only what was written before the call goes: a memory this process writes after it (an
    ``add`` called while the forget runs: a newer version) stays and is not counted, in Redis
    and in the in-process copy alike, as a clear keeps what is written while it runs.

    With Redis it needs Redis: if Redis fails part-way it raises ``IncompleteOperationError``
    with the count so far: the deletes already sent stand, and those journalled, counted too,
    replay when Redis is back.
    """
    forgetting = await store.begin_forget()  # its version, as called: before any other await
    removed, after = 0, None
    # First, writes of the scope made before now become stale in Redis: one journalled by
    # another process during an outage, and replayed after this forget, must not come back.
    if store.journal_size and not store.degraded:
        await store.flush()  # this process's own journalled writes of the scope land first
    if (await store.mark_forgotten(scope, forgetting)).fallback:
        raise IncompleteOperationError(
            f"forget({scope!r}) deleted 0 memories: this process is serving in-process (Redis "
            "failed, or on a cluster a slot it needs is moving, and its recovery has not yet "
            "replayed); run it again once Redis is back",
            done=0,
        )
    while True:
        if store.journal_size and not store.degraded:
            # The replay's last batch is on its way: Redis lists the scope only once it has
            # landed (a memory in it would otherwise be missed, and stay once it lands).
            await store.flush()
        served = await store.scope_page(scope, after, FORGET_PAGE)
        if served.fallback:
            raise IncompleteOperationError(
                f"forget({scope!r}) deleted {removed:,} memories, then Redis stopped answering: "
                "the rest are still there; run it again once Redis is back",
                done=removed,
            )
        rows, after = served.value
        results = await asyncio.gather(*(store.forget_key(key, forgetting) for key, _, _ in rows))
        # A delete journalled (Redis failed on the way) still removes the memory Redis listed,
        # when it replays: counted now, as the run after the replay will not find it.
        journalled = sum(result.fallback for result in results)
        removed += sum(bool(result.value) and not result.fallback for result in results)
        if journalled:
            raise IncompleteOperationError(
                f"forget({scope!r}) deleted {removed + journalled:,} memories, {journalled:,} "
                "of them when Redis is back (Redis stopped answering: their deletes are "
                "journalled); run it again for the rest",
                done=removed + journalled,
            )
        if after is None:
            break
    await store.forget_local(scope, forgetting)  # the copy may hold keys Redis no longer has
    return removed
