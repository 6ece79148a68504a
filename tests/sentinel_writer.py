"""One writer process of test_redis_sentinel.py's failover: writes through a ``redis+sentinel://``
URL until told to stop, replays what it journalled, and prints one JSON line (the keys its
calls returned for, and any error a call raised)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

from tta_dev_primitives import MemoryPrimitive


async def keep_writing(
    memory: MemoryPrimitive,
    prefix: str,
    stopped: Callable[[], bool],
    written: list[str],
    errors: list[str],
    started: Callable[[], None] = lambda: None,
) -> None:
    """Eight writers adding until ``stopped()``: the keys whose add returned go to ``written``,
    any exception a call raised to ``errors`` (each is a failure of the library); ``started``
    once the first add returned."""

    async def writer(task: int) -> None:
        i = 0
        while not stopped():
            key = f"{prefix}u{task}:s{i % 3}:{i}"
            try:
                await memory.add(key, {"content": f"turn {i} of {prefix}/{task}"})
                written.append(key)
            except Exception as exc:  # any exception is a failure of the library
                errors.append(repr(exc))
            if i == 0 and task == 0:
                started()
            i += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(writer(task) for task in range(8)))


async def write(url: str, ns: str, worker: str, signals: Path) -> dict[str, object]:
    memory = MemoryPrimitive(
        url, namespace=ns, redis_timeout=1.0, recovery_interval=0.05, max_recovery_interval=0.2,
        max_size=100_000,
    )  # fmt: skip
    written: list[str] = []
    errors: list[str] = []
    stop = signals / "stop"
    ready = signals / f"ready-{worker}"
    await keep_writing(memory, worker, stop.exists, written, errors, ready.touch)
    for _ in range(900):  # the replay, bounded: about 90 s
        if await memory.flush() and memory.using_redis:
            break
        await asyncio.sleep(0.1)
    else:
        errors.append("the journal was not replayed within 90 s")
    await memory.aclose()
    return {"written": written, "errors": errors}


def main() -> None:
    url, ns, worker, signals = sys.argv[1:5]
    print(json.dumps(asyncio.run(write(url, ns, worker, Path(signals)))))


if __name__ == "__main__":
    main()
