"""Outage puts whose callers were cancelled while their records went to the durable journal.

Once queued for the journal's file, such a record is written anyway. If the file then refuses
it (a full disk), the put was stored nowhere, yet its in-process copy would serve outage reads:
the store drops that copy before its next in-process read. Unless a later write of the key was
made meanwhile (a retry of the same add, say): the copy is that write's then, and stays.
"""

from __future__ import annotations

import asyncio

from tta_dev_primitives.stores._base import Clear, Delete, Put, Write

__all__ = ["CancelledPuts"]


class CancelledPuts:
    """The cancelled puts whose records are pending (key: version), and the refused ones."""

    __slots__ = ("_pending", "_refused")

    def __init__(self) -> None:
        self._pending: dict[str, str] = {}
        self._refused: list[Put] = []

    def __bool__(self) -> bool:
        return bool(self._pending or self._refused)

    def watch(self, adding: asyncio.Future[None], put: Put) -> None:
        """``put``'s caller was cancelled while ``adding`` (its journalling) goes on."""
        self._pending[put.key] = put.version
        adding.add_done_callback(lambda done: self._landed(done, put))

    def _landed(self, adding: asyncio.Future[None], put: Put) -> None:
        refused = not adding.cancelled() and adding.exception() is not None
        if self._pending.get(put.key) != put.version:
            return  # a later write of the key was made: its copy stands
        del self._pending[put.key]
        if refused:
            self._refused.append(put)

    def supersede(self, write: Write) -> None:
        """``write`` (issued now) makes the copy of its key its own: no record may drop it.
        Unless it is older than the cancelled put (a forget's delete carries the version the
        forget was called with, and leaves a newer copy alone)."""
        if isinstance(write, Put | Delete):
            if self._pending.get(write.key, "") < write.version:
                self._pending.pop(write.key, None)
            self._refused = [
                put for put in self._refused if put.key != write.key or put.version > write.version
            ]
        elif isinstance(write, Clear):  # the copy holds none of them
            self._pending.clear()
            self._refused.clear()

    def refused(self) -> list[Put]:
        """The refused puts whose copies are to be dropped, taken (each is returned once)."""
        taken, self._refused = self._refused, []
        return taken
