"""What a replica asks a server of another run to still hold: writes and deletes it has read.

A partition restored from an older snapshot (or a replica promoted while it lagged) keeps its
epoch, and once written to again its last sequence passes what the replica read: only the
records the replica read can tell. Each witness must still be in the partition at its sequence
or a later one (rewritten or deleted since); one that is not was lost, and the replica reloads
the partition.

Every page says which run it was read on, so the check comes before any record of the new run
is read. Witnesses are samples, so keys written again after the restart (before the check)
pass. To make that unlikely, each kind (writes, deletes) keeps distinct keys: the newest
``NEWEST``, and records spread back over what was read: slot ``j`` (in ``SPREAD``) takes the
records whose count read is an odd multiple of ``2**j`` (so it holds one of the last
``2**(j+1)``), if its key is not a witness already.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["NEWEST", "SPREAD", "Witnesses"]

NEWEST: Final = 16
SPREAD: Final = range(3, 13)


class _Sample:
    """One kind of record's witnesses: the newest distinct keys, and older ones spread."""

    __slots__ = ("newest", "read", "spread")

    def __init__(self) -> None:
        self.newest: OrderedDict[str, int] = OrderedDict()
        self.spread: dict[int, tuple[str, int]] = {}
        self.read = 0

    def note(self, key: str, seq: int) -> None:
        newest = self.newest
        if key not in newest:
            # A key leaving the newest may stay on as a spread witness, if it is not one yet
            # (a hot key counts once, and holds one slot at most).
            self.read = read = self.read + 1
            zeros = (read & -read).bit_length() - 1  # the largest j with 2**j dividing read
            if zeros >= SPREAD[0] and all(k != key for k, _ in self.spread.values()):
                self.spread[min(zeros, SPREAD[-1])] = (key, seq)
        newest[key] = seq
        newest.move_to_end(key)
        if len(newest) > NEWEST:
            newest.popitem(last=False)

    def pairs(self) -> list[tuple[str, int]]:
        return [*self.spread.values(), *self.newest.items()]


class Witnesses:
    """The records of one partition a replica has read, kept as witnesses (see the module).

    Each sample is made at its first record: a cluster's replica keeps a cursor for each of 64
    partitions, most of which a per-user replica never reads a record of, and every sample is
    objects the garbage collector tracks."""

    __slots__ = ("_dels", "_puts")

    def __init__(self) -> None:
        self._puts: _Sample | None = None
        self._dels: _Sample | None = None

    def clear(self) -> None:
        self._puts = self._dels = None

    def put(self, key: str, seq: int) -> None:
        """``key`` was read as written at ``seq``."""
        if self._puts is None:
            self._puts = _Sample()
        self._puts.note(key, seq)

    def delete(self, key: str, seq: int) -> None:
        """``key`` was read as deleted at ``seq``."""
        if self._dels is None:
            self._dels = _Sample()
        self._dels.note(key, seq)

    def args(self) -> list[str]:
        """Key, sequence pairs for CHANGES: each key once, at the newest sequence read."""
        newest: dict[str, int] = {}
        for sample in (self._puts, self._dels):
            for key, seq in sample.pairs() if sample is not None else ():
                newest[key] = max(seq, newest.get(key, seq))
        return [part for key, seq in newest.items() for part in (key, str(seq))]
