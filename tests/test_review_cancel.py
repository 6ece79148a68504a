"""A caller's cancellation of ``aclose()`` is not swallowed by the recovery's own."""

from __future__ import annotations

import asyncio
from typing import Any

from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._hybrid import HybridStore
from tta_dev_primitives.stores._inprocess import InProcessBackend


class Stalling(InProcessBackend):
    """A remote that is down, then stalls (no answer to the recovery's probe); cancelled, it
    takes a few loop turns to let go of its connection, as redis-py does."""

    kind = "stalling"

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.probing = asyncio.Event()

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        if not self.up:
            raise BackendUnavailableError("down")
        await super().put(key, payload, ttl, version=version)

    async def probe(self) -> None:
        self.probing.set()
        try:
            await asyncio.Event().wait()  # no answer
        except asyncio.CancelledError:
            for _ in range(3):
                await asyncio.sleep(0)  # closing the connection
            raise


async def test_cancelling_aclose_while_it_waits_for_the_recovery_is_not_swallowed() -> None:
    remote = Stalling()
    store = HybridStore(InProcessBackend(), remote, backoff=Backoff(60, 60))
    await store.put("a", "1", None)  # journalled: the remote is down
    flushing = asyncio.create_task(store.flush())  # starts the recovery, which stalls
    await remote.probing.wait()
    flushing.cancel()  # the recovery goes on (shielded)
    await asyncio.gather(flushing, return_exceptions=True)

    closer = asyncio.create_task(store.aclose())
    await asyncio.sleep(0)  # aclose cancelled the recovery and waits for it to end
    closer.cancel()  # and now its caller cancels it (a shutdown, a timeout)
    (outcome,) = await asyncio.gather(closer, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), outcome
