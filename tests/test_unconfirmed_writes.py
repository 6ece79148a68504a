"""A replay cancelled part-way through a batch (its event loop ending: one ``asyncio.run()`` per
request, the serverless shape) must not report as lost the writes Redis confirmed before, and
must tell the writes it sent without seeing the reply (Redis may hold them) from the writes it
never sent (lost): in ``UnsentWritesError``, in the log at exit, and in the counters.

The cancellation is made deterministic, not raced with a sleep: the second pipelined chunk of
the replay reaches Redis and is applied, and then its caller never sees the reply (the hook
waits forever, as a replay does whose loop ends while the reply is on its way) until the test
cancels it. With 450 journalled writes the replay's one batch is three chunks (200, 200, 50):
chunk 1 confirmed, chunk 2 applied but unconfirmed, chunk 3 never sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import Factory, fast_recovery
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError
from tta_dev_primitives.stores._redis.backend import RedisBackend

pytestmark = pytest.mark.redis

N = 450  # journalled writes: one replay batch (500), three pipelined chunks (200, 200, 50)
CONFIRMED, UNCONFIRMED, NEVER_SENT = 200, 200, 50


def hold_the_second_chunk(remote: RedisBackend) -> asyncio.Event:
    """Let the replay's second chunk reach Redis and be applied, then hide its reply: the
    replay waits as if the reply were still on its way. The event is set once it waits."""
    real = remote._pipeline
    held = asyncio.Event()
    calls = 0

    async def pipeline(writes: Sequence[Any], *rest: Any) -> None:
        nonlocal calls
        calls += 1
        await real(writes, *rest)
        if calls == 2:
            held.set()
            await asyncio.Event().wait()  # the reply never seen: until cancelled

    remote._pipeline = pipeline  # type: ignore[method-assign]
    return held


async def stored(url: str, ns: str) -> int:
    reader = MemoryPrimitive(url, namespace=ns)
    try:
        return await reader.size()
    finally:
        await reader.aclose()


async def cancelled_mid_batch(server: Any, n: int = N) -> MemoryPrimitive:
    """A memory whose replay of ``n`` outage writes was cancelled with its second chunk applied
    by Redis and unconfirmed: Redis holds the first two chunks."""
    memory = fast_recovery(server.url)
    await memory.add("warm", {"v": 0})
    server.kill()
    await asyncio.gather(*(memory.add(f"u1:s:{i:05d}", {"content": i}) for i in range(n)))
    assert memory.get_backend_info()["journal_size"] == n
    server.start()
    remote = memory._store.remote  # type: ignore[attr-defined]
    assert isinstance(remote, RedisBackend)
    held = hold_the_second_chunk(remote)
    async with asyncio.timeout(60):  # a hang guard
        while not held.is_set():
            await memory.get("u1:s:00000")  # starts the background replay once a probe is due
            await asyncio.sleep(0.05)
    task = memory._store._recovery  # type: ignore[attr-defined]
    assert task is not None
    task.cancel()  # as asyncio.run() does with the tasks left when its request returns
    await asyncio.wait([task])
    assert await stored(server.url, memory.namespace) == CONFIRMED + UNCONFIRMED
    return memory


async def test_aclose_counts_confirmed_writes_as_stored_and_unconfirmed_ones_apart(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Closed (Redis down again) after a replay cancelled mid-batch: the writes Redis confirmed
    are not reported; ``.unsent`` counts only the never-sent ones and ``.unconfirmed`` the ones
    sent without a reply seen; the log and the counters say the same. Nothing is under-reported:
    every write is stored or in one of the two counts."""
    server = redis_server_factory()
    memory = await cancelled_mid_batch(server)
    server.kill()  # Redis gone before the close: what the journal holds stays unsent
    with pytest.raises(UnsentWritesError) as caught:
        await memory.aclose()
    assert caught.value.unsent == NEVER_SENT  # not N: Redis holds the first two chunks
    assert caught.value.unconfirmed == UNCONFIRMED
    message = str(caught.value)
    assert f"closed with {NEVER_SENT} writes journalled" in message
    assert f"{UNCONFIRMED} more were sent" in message
    assert "may or may not be stored" in message
    info = memory.get_backend_info()
    assert (info["journal_dropped"], info["journal_unconfirmed"]) == (NEVER_SENT, UNCONFIRMED)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert message in errors


async def test_a_close_with_only_unconfirmed_writes_left_does_not_call_them_lost(
    redis_server_factory: Factory,
) -> None:
    """Every write left was sent by the cancelled replay: the close says they may or may not
    be stored, not "closed with 0 writes still unsent ... lost" (review R20)."""
    server = redis_server_factory()
    memory = await cancelled_mid_batch(server, CONFIRMED + UNCONFIRMED)
    server.kill()  # Redis gone before the close: the unconfirmed chunk stays in doubt
    with pytest.raises(UnsentWritesError) as caught:
        await memory.aclose()
    assert (caught.value.unsent, caught.value.unconfirmed) == (0, UNCONFIRMED)
    message = str(caught.value)
    assert message.startswith(f"memory closed with {UNCONFIRMED} writes journalled during an ")
    assert "may or may not be stored" in message
    assert "with 0 writes" not in message
    assert "lost" not in message


async def test_a_memory_never_closed_with_only_unconfirmed_writes_does_not_call_them_lost(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The exit log likewise, when every write left was sent by the cancelled replay."""
    server = redis_server_factory()
    memory = await cancelled_mid_batch(server, CONFIRMED + UNCONFIRMED)
    caplog.set_level(logging.ERROR, logger="tta_dev_primitives.memory")
    memory._store._unclosed()  # type: ignore[attr-defined]
    [logged] = [r.getMessage() for r in caplog.records if "never closed" in r.getMessage()]
    assert f"never closed: {UNCONFIRMED} writes journalled during an outage that a" in logged
    assert "may or may not be stored" in logged
    assert "closed: 0 writes" not in logged
    assert "lost" not in logged
    async with asyncio.timeout(60):
        await memory.aclose()  # Redis is up: the rest replays
    assert await stored(server.url, memory.namespace) == CONFIRMED + UNCONFIRMED


async def test_a_memory_never_closed_logs_only_never_sent_writes_as_lost(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The exit log of a memory never closed (its finalizer, as at interpreter exit) after a
    replay cancelled mid-batch: the confirmed chunk is not in it; the never-sent writes are
    called lost, the unconfirmed ones maybe stored."""
    server = redis_server_factory()
    memory = await cancelled_mid_batch(server)
    caplog.set_level(logging.ERROR, logger="tta_dev_primitives.memory")
    memory._store._unclosed()  # type: ignore[attr-defined]
    [logged] = [r.getMessage() for r in caplog.records if "never closed" in r.getMessage()]
    assert f"never closed: {NEVER_SENT} writes journalled during an outage" in logged
    assert f"{UNCONFIRMED} more were sent" in logged
    assert "may or may not be stored" in logged
    info = memory.get_backend_info()
    assert (info["journal_dropped"], info["journal_unconfirmed"]) == (NEVER_SENT, UNCONFIRMED)
    async with asyncio.timeout(60):
        await memory.aclose()  # Redis is up: the rest replays
    assert await stored(server.url, memory.namespace) == N  # ("warm" went with the killed server)


_CHILD = """
import asyncio, logging, os, sys, time
logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
from tta_dev_primitives import MemoryPrimitive
url, ready, go, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
memory = MemoryPrimitive(url, namespace="exit", redis_timeout=0.5, recovery_interval=0.05,
                         max_recovery_interval=0.05)
remote = memory._store.remote
real, calls, held = remote._pipeline, [0], []

async def pipeline(writes, *rest):
    calls[0] += 1
    await real(writes, *rest)
    if calls[0] == 2:
        held.append(True)
        await asyncio.Event().wait()

remote._pipeline = pipeline

async def request1():
    await asyncio.gather(*(memory.add(f"u1:s:{i:05d}", {"content": i}) for i in range(n)))
    assert memory.get_backend_info()["journal_size"] == n

asyncio.run(request1())
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)

async def request2():
    await memory.get("u1:s:00000")  # a quick request: the replay goes on in the background
    while not held:
        await asyncio.sleep(0.01)
        await memory.get("u1:s:00000")

asyncio.run(request2())  # returns: asyncio.run cancels the replay; the process exits unclosed
"""


def test_the_exit_log_of_a_serverless_process_counts_only_what_redis_lacks(
    redis_server_factory: Factory, tmp_path: Path
) -> None:
    """The reviewer's shape end to end: one ``asyncio.run()`` per request, writes journalled in
    the first, the replay cancelled by the end of the second with a chunk applied but its reply
    unseen, the process ending without ``aclose()``."""
    server = redis_server_factory()
    server.kill()
    ready, go = tmp_path / "ready", tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CHILD), server.url, str(ready), str(go), str(N)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for _ in range(6000):  # a hang guard (60 s)
            if ready.exists() or child.poll() is not None:
                break
            time.sleep(0.01)
        assert ready.exists(), child.communicate()[0]
        server.start()
        go.touch()
        out = child.communicate(timeout=120)[0]
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out
    assert asyncio.run(stored(server.url, "exit")) == CONFIRMED + UNCONFIRMED
    [logged] = [line for line in out.splitlines() if "never closed" in line]
    assert f"never closed: {NEVER_SENT} writes journalled during an outage" in logged, out
    assert f"{UNCONFIRMED} more were sent" in logged
    assert "may or may not be stored" in logged, out
