"""The outage journal and the replay, without a server (the Redis paths are in test_outage.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tta_dev_primitives.exceptions import BackendError, BackendUnavailableError
from tta_dev_primitives.stores._base import ApplyProgress, Clear, Delete, Put, Write
from tta_dev_primitives.stores._inprocess import InProcessBackend
from tta_dev_primitives.stores._recovery import Journal, Replay


def keys(journal: Journal) -> list[object]:
    return [getattr(e.write, "key", "CLEAR") for _, e in journal.head(len(journal) + 1)]


def test_a_newer_write_replaces_the_keys_journalled_write_in_its_own_place() -> None:
    """Only the newest change of a key is kept, at the position of that change."""
    journal = Journal()
    for write in (Put("a", "1"), Put("b", "1"), Put("a", "2"), Delete("b")):
        journal.add(write, None)
    assert keys(journal) == ["a", "b"]
    assert [type(e.write).__name__ for _, e in journal.head(9)] == ["Put", "Delete"]


def test_a_clear_supersedes_everything_before_it() -> None:
    """A journalled clear drops the changes before it; later ones stay after it."""
    journal = Journal()
    for write in (Put("a", "1"), Delete("b"), Clear(), Put("c", "1")):
        journal.add(write, None)
    assert keys(journal) == ["CLEAR", "c"]


def test_caps_drop_the_oldest_and_count_them() -> None:
    """Past max_entries or max_bytes the oldest entries go, and each is counted."""
    journal = Journal(max_entries=3)
    dropped = [journal.add(Put(f"k{i}", "x"), None) for i in range(5)]
    assert (dropped, journal.dropped, keys(journal)) == ([0, 0, 0, 1, 1], 2, ["k2", "k3", "k4"])
    small = Journal(max_bytes=2_000)
    for i in range(10):
        small.add(Put(f"k{i}", "x" * 500), None)
    assert small.bytes <= 2_000
    assert small.dropped == 10 - len(small)


def test_caps_spare_entries_on_their_way() -> None:
    """An entry sent (its batch on its way, or its reply lost) may be stored: a full journal
    drops the oldest entry not sent, so that ``dropped`` counts only writes Redis cannot hold
    (review R19: a full journal during a replay counted more than were missing)."""
    journal = Journal(max_entries=3)
    for i in range(3):
        journal.add(Put(f"k{i}", "x"), None)
    for _, entry in journal.head(2):
        entry.sent = True  # the head of the journal is on its way
    assert journal.add(Put("k3", "x"), None) == 1
    assert (journal.dropped, keys(journal)) == (1, ["k0", "k1", "k3"])
    journal.add(Put("k4", "x"), None)  # the oldest not sent, k3, goes
    assert (journal.dropped, keys(journal)) == (2, ["k0", "k1", "k4"])
    for _, entry in journal.head(3):
        entry.sent = True
    journal.add(Put("k5", "x"), None)  # every other entry on its way: the cap waits for them
    assert (journal.dropped, keys(journal)) == (2, ["k0", "k1", "k4", "k5"])


def test_an_entry_replaced_while_in_flight_stays() -> None:
    """done() keeps an entry whose key was written again while its batch was being sent."""
    journal = Journal()
    journal.add(Put("a", "1"), None)
    batch = journal.head(10)
    journal.add(Put("a", "2"), None)
    journal.done(batch)
    assert [e.write for _, e in journal.head(10)] == [Put("a", "2")]


class Refusing(InProcessBackend):
    """An in-process backend that refuses one key's writes for their data."""

    async def apply(
        self, writes: Sequence[Write], *, progress: ApplyProgress | None = None
    ) -> None:
        if any(getattr(w, "key", None) == "bad" for w in writes):
            raise BackendError("ERR refused")
        await super().apply(writes, progress=progress)

    async def put(self, key: str, payload: object, ttl: float | None = None, *,
                  version: str = "") -> None:  # fmt: skip
        if key == "bad":
            raise BackendError("ERR refused")
        await super().put(key, payload, ttl)


async def test_refused_entries_become_dead_letters_and_the_rest_lands() -> None:
    """One refused write is set aside; the others of its batch are applied."""
    remote = Refusing(100)
    journal = Journal()
    for key in ("a", "bad", "b"):
        journal.add(Put(key, "{}"), None)
    replay = Replay(remote, journal, lambda: 0.0)
    assert await replay.run() == 3
    assert (replay.dead, len(journal)) == (1, 0)
    assert replay.dead_letters[0]["key"] == "bad"
    assert await remote.get("a") == "{}"
    assert await remote.get("b") == "{}"


async def test_a_backend_whose_apply_predates_progress_is_still_replayed() -> None:
    """A user's backend overriding ``apply(writes)`` without ``progress=`` (the signature the
    seam had before) gets its batch whole, and the journal drains."""

    class Batching(InProcessBackend):
        batches: list[int] = []  # noqa: RUF012 (one test's record)

        async def apply(self, writes: Sequence[Write]) -> None:  # type: ignore[override]
            self.batches.append(len(writes))
            for write in writes:
                await super().apply([write])

    remote = Batching(100)
    journal = Journal()
    for key in ("a", "b", "c"):
        journal.add(Put(key, "{}"), None)
    assert await Replay(remote, journal, lambda: 0.0).run() == 3
    assert (len(journal), remote.batches) == (0, [3])
    assert await remote.get("c") == "{}"


async def test_an_availability_error_keeps_the_journal() -> None:
    """A remote that fails for availability stops the replay; nothing leaves the journal."""

    class Down(InProcessBackend):
        async def probe(self) -> None:
            raise BackendUnavailableError("down")

    journal = Journal()
    journal.add(Put("a", "{}"), None)
    with pytest.raises(BackendUnavailableError):
        await Replay(Down(10), journal, lambda: 0.0).run()
    assert len(journal) == 1


class Hanging(InProcessBackend):
    """Applies the first ``applied`` writes of a batch one by one (confirmed), then sends the
    next one and never sees its reply: a replay cancelled (its loop ending) mid-batch."""

    def __init__(self, applied: int) -> None:
        super().__init__(100)
        self.applied = applied
        self.hung = asyncio.Event()

    async def apply(
        self, writes: Sequence[Write], *, progress: ApplyProgress | None = None
    ) -> None:
        assert progress is not None
        await super().apply(writes[: self.applied], progress=progress)
        progress(self.applied + 1, self.applied)
        await super().apply(writes[self.applied : self.applied + 1])  # it lands; no reply
        self.hung.set()
        await asyncio.Event().wait()


async def test_a_replay_cancelled_mid_batch_keeps_only_what_it_did_not_see_applied() -> None:
    """Writes the remote confirmed leave the journal at once, not at the end of the batch; the
    one sent without a reply stays, marked sent; ``lose`` tells it from the never-sent ones."""
    remote = Hanging(applied=2)
    journal = Journal()
    for key in "abcde":
        journal.add(Put(key, "{}"), None)
    run = asyncio.create_task(Replay(remote, journal, lambda: 0.0).run())
    await remote.hung.wait()
    run.cancel()
    await asyncio.wait([run])
    assert keys(journal) == ["c", "d", "e"]
    assert [e.sent for e in journal.entries()] == [True, False, False]
    assert await remote.get("c") == "{}"  # (it did land)
    assert journal.lose() == (2, 1)
    assert (journal.dropped, journal.unconfirmed) == (2, 1)


async def test_writes_sent_one_by_one_leave_the_journal_as_each_is_answered() -> None:
    """After a refusal for its data, the batch is sent write by write: each answered write
    leaves the journal, so a run cancelled meanwhile does not count them as unsent."""

    class RefusingThenHanging(Refusing):
        async def put(self, key: str, payload: object, ttl: float | None = None, *,
                      version: str = "") -> None:  # fmt: skip
            if key == "d":
                self.hung.set()
                await asyncio.Event().wait()
            await super().put(key, payload, ttl)

    remote = RefusingThenHanging(100)
    remote.hung = asyncio.Event()
    journal = Journal()
    for key in ("a", "bad", "c", "d", "e"):
        journal.add(Put(key, "{}"), None)
    run = asyncio.create_task(Replay(remote, journal, lambda: 0.0).run())
    await remote.hung.wait()
    run.cancel()
    await asyncio.wait([run])
    assert keys(journal) == ["d", "e"]
    assert journal.lose() == (1, 1)


async def test_a_full_journal_spares_a_batch_taken_but_not_yet_reported_sent() -> None:
    """Review R21: entries were marked ``sent`` only as the remote reported them, so writers
    running while a batch was taken but before that (another thread's loop, or writes let
    through by the pacing) had the cap drop entries the batch still sent: they landed, yet
    ``journal_dropped`` counted them (98,529 counted, 89,700 missing). A taken batch is
    spared, and ``dropped`` counts exactly the writes the remote never got."""

    class Slow(InProcessBackend):
        async def apply(self, writes: Sequence[Write], progress: ApplyProgress | None = None
                        ) -> None:  # fmt: skip
            started.set()
            await proceed.wait()
            await super().apply(writes, progress=progress)

    started, proceed = asyncio.Event(), asyncio.Event()
    remote = Slow()
    journal = Journal(max_entries=4)
    for i in range(4):
        journal.add(Put(f"k{i}", "{}"), None)
    run = asyncio.create_task(Replay(remote, journal, lambda: 0.0, batch=2).run())
    await started.wait()  # k0 and k1 taken, not yet reported sent
    for i in range(4, 8):
        journal.add(Put(f"k{i}", "{}"), None)  # past the cap: k2, k3, k4, k5 go
    proceed.set()
    await run
    landed = {key for key in (f"k{i}" for i in range(8)) if await remote.get(key) is not None}
    assert journal.dropped == 8 - len(landed)
    assert {"k0", "k1", "k6", "k7"} <= landed
