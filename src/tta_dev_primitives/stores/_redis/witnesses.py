"""What a replica asks a server of another run to still hold: writes and deletes it has read.

A partition restored from an older snapshot (or a replica promoted while it lagged) keeps its
epoch, and once written to again its last sequence passes what the replica read: only the
records the replica read can tell. Each witness must still be in the partition at its sequence
or a later one (rewritten or deleted since); one that is not was lost, and the replica reloads
the partition. Witnesses are distinct keys, so a few hot keys written again after the restart
cannot stand for all of them: the newest ``NEWEST`` keys written and deleted, and one record
of every ``2**j`` read (``j`` in ``SPREAD``), each within the last ``2**j`` records, so that a
rollback that lost older records is seen even when the newest keys were all written again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["NEWEST", "SPREAD", "Witnesses"]

NEWEST: Final = 8
SPREAD: Final = range(3, 11)


class Witnesses:
    """The records of one partition a replica has read, kept as witnesses (see the module)."""

    __slots__ = ("_dels", "_puts", "_read", "_spread")

    def __init__(self) -> None:
        self._puts: OrderedDict[str, int] = OrderedDict()
        self._dels: OrderedDict[str, int] = OrderedDict()
        self._spread: dict[int, tuple[str, int]] = {}
        self._read = 0

    def clear(self) -> None:
        self._puts.clear()
        self._dels.clear()
        self._spread.clear()
        self._read = 0

    def put(self, key: str, seq: int) -> None:
        """``key`` was read as written at ``seq``."""
        _newest(self._puts, key, seq)
        self._read = read = self._read + 1
        zeros = (read & -read).bit_length() - 1  # the largest j with 2**j dividing ``read``
        for j in SPREAD:
            if j > zeros:
                break
            self._spread[j] = (key, seq)

    def delete(self, key: str, seq: int) -> None:
        """``key`` was read as deleted at ``seq``."""
        _newest(self._dels, key, seq)

    def args(self) -> list[str]:
        """Key, sequence pairs for CHANGES: each key once, at the newest sequence read."""
        newest: dict[str, int] = {}
        for key, seq in (*self._spread.values(), *self._puts.items(), *self._dels.items()):
            newest[key] = max(seq, newest.get(key, seq))
        return [part for key, seq in newest.items() for part in (key, str(seq))]


def _newest(kept: OrderedDict[str, int], key: str, seq: int) -> None:
    kept[key] = seq
    kept.move_to_end(key)
    if len(kept) > NEWEST:
        kept.popitem(last=False)
