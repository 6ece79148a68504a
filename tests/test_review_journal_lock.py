"""Review: a durable journal whose lock file was deleted while held (``JournalFile._own_lock``).

The lock is taken again when no one holds it. But a second memory may have locked a new lock
file meanwhile, journalled outage writes into the file (acknowledged), and closed before Redis
came back (its start compaction failed, a nearly full disk, so both had one file open). The
first memory then replays its own journal and compacts the file to what *it*
holds: the second's acknowledged writes are gone from the file, and no process replays them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import Factory, fast_recovery, namespace
from redis_server import RedisServer

pytestmark = pytest.mark.redis


def _delete(path: Path) -> None:
    path.unlink()


def _block_compaction(path: Path, blocked: bool) -> None:
    """A directory where a compaction makes its temporary file: the rewrite fails, as on a
    nearly full disk, while appends still succeed."""
    tmp = Path(f"{path}.tmp")
    tmp.mkdir() if blocked else tmp.rmdir()


async def _stored(server: RedisServer, ns: str) -> dict[str, Any]:
    reader = fast_recovery(server.url, ns)
    try:
        return {key: value async for key, value, _ in reader.items()}
    finally:
        await reader.aclose()


async def test_a_retaken_lock_does_not_compact_away_another_memorys_writes(
    redis_server_factory: Factory, tmp_path: Path
) -> None:
    journal = tmp_path / "memory.journal"
    server = redis_server_factory()
    ns = namespace()
    first = fast_recovery(server.url, ns, journal_path=str(journal))
    await first.add("warm", {"content": "warm"})
    server.kill()
    await first.add("first", {"content": "the first memory's outage write"})
    _delete(Path(f"{journal}.lock"))  # a /tmp cleaner
    # The second's start compaction fails (a nearly full disk: no room for a second copy), so
    # it appends to the file the first has open.
    _block_compaction(journal, True)
    second = fast_recovery(server.url, ns, journal_path=str(journal))
    await second.add("second", {"content": "the second memory's outage write"})  # acknowledged
    await second.aclose()  # Redis still away: its write waits in the file
    _block_compaction(journal, False)
    server.start()

    assert await first.flush()  # the first replays its journal, then compacts the file

    await first.aclose()
    again = fast_recovery(server.url, ns, journal_path=str(journal))
    try:
        assert await again.flush()
    finally:
        await again.aclose()
    assert {"first", "second"} <= set(await _stored(server, ns))
