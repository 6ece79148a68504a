"""What the durable journal (``journal_path=``) costs an outage write, against no journal file.

Run: ``.venv/bin/python benchmarks/bench_journal.py`` (starts a throwaway redis-server on
loopback, kills it, and journals; ``--quick`` for a smoke run, ``--json PATH`` to save figures;
``--dir`` puts the journal on another disk).

Each write is acknowledged only once it is fsynced, so a writer that awaits each ``add`` pays one
``fsync`` per write; concurrent writers share one write and ``fsync`` per batch (group commit).
Measured in the same run: adds per second during an outage with the in-process journal only,
and with ``journal_path`` for 1 writer and for ``--writers`` concurrent ones; then how fast a
new process replays the file once Redis is back.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _timing import bench_main, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError


def memory(url: str, journal: Path | None) -> MemoryPrimitive:
    return MemoryPrimitive(
        url, namespace="bench:journal", redis_timeout=1.0, recovery_interval=30.0,
        max_recovery_interval=30.0, max_journal=1_000_000, max_size=1_000_000,
        journal_path=journal,
    )  # fmt: skip


async def outage_rate(url: str, journal: Path | None, writes: int, writers: int) -> float:
    """Adds per second during an outage, ``writers`` concurrent loops."""
    mem = memory(url, journal)
    await mem.add("warm", {"content": "the first write finds Redis down"})
    each = writes // writers

    async def loop(w: int) -> None:
        for i in range(each):
            await mem.add(f"u{w}:s0:{i}", {"content": f"note {i} written during the outage"})

    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(writers)))
    took = time.perf_counter() - start
    try:
        await mem.aclose()
    except UnsentWritesError:
        assert journal is None  # in-process only: lost on close, as measured (and said)
    return each * writers / took


async def run(args: Any) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    writes = 2_000 if args.quick else args.writes
    server = RedisServer(binary).start()
    directory = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        server.kill()
        figures: dict[str, Any] = {"writes": writes, "writers": args.writers}
        figures["none_1"] = await outage_rate(server.url, None, writes, 1)
        figures["file_1"] = await outage_rate(server.url, directory / "one.journal", writes, 1)
        figures["none_n"] = await outage_rate(server.url, None, writes, args.writers)
        path = directory / "many.journal"
        figures["file_n"] = await outage_rate(server.url, path, writes, args.writers)
        figures["file_bytes_per_write"] = path.stat().st_size / writes
        server.start()
        start = time.perf_counter()
        fresh = memory(server.url, path)
        await fresh.get("warm")  # the first operation replays the file
        figures["replay_s"] = time.perf_counter() - start
        figures["replayed"] = fresh.get_backend_info()["journal_restored"]
        await fresh.clear()
        await fresh.aclose()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return figures


def report(f: dict[str, Any]) -> None:
    rows = [
        ["1 writer", f["none_1"], f["file_1"], f["file_1"] / f["none_1"]],
        [f"{f['writers']} writers", f["none_n"], f["file_n"], f["file_n"] / f["none_n"]],
    ]
    print(f"{f['writes']:,} adds during an outage (Redis killed), per second:")
    print(table(["", "no journal file", "journal_path", "file/none"], rows))
    print(f"journal file: {f['file_bytes_per_write']:.0f} bytes per write; a new process "
          f"replayed {f['replayed']:,} writes from it in {f['replay_s']:.2f} s "
          f"({f['replayed'] / f['replay_s']:,.0f} writes/s)")  # fmt: skip
    print("journal benchmark done")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--writes", type=int, default=20_000, help="adds per measurement")
    parser.add_argument("--writers", type=int, default=50, help="concurrent writers")
    parser.add_argument("--dir", default=None, help="where the journal files go")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
