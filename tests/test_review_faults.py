"""Fault-path review: replies garbled on the way, and faults hitting several writer processes.

The garbling relay is the one stand-in: a TCP relay to a real ``redis-server`` that, while told
to, replaces each reply with one of a form Redis never sends to that command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import fast_recovery, namespace, replayed, run_python, tcp_relay
from redis_server import RedisServer
from tta_dev_primitives.exceptions import BackendError, IncompleteOperationError, TTAError

pytestmark = pytest.mark.redis


class Garbler:
    """A relay to Redis; ``reply`` (if set) replaces every reply chunk; ``down`` closes every
    connection at once (an outage)."""

    def __init__(self) -> None:
        self.reply: bytes | None = None
        self.down = False


@contextlib.asynccontextmanager
async def garbling_relay(port: int) -> AsyncIterator[tuple[str, Garbler]]:
    garbler = Garbler()
    async with tcp_relay(
        lambda: port,
        down=lambda: garbler.down,
        reply=lambda chunk: chunk if garbler.reply is None else garbler.reply,
    ) as url:
        yield url, garbler


# Replies of a form Redis never sends to the write scripts or GET: an integer where a sequence
# number (a string of digits) is due, a status, an array, a nil, a double, a non-number.
GARBLED = [
    b":7\r\n", b"+OK\r\n", b"*2\r\n:1\r\n:2\r\n", b"$-1\r\n", b",1.5\r\n", b"$5\r\n12abc\r\n"
]  # fmt: skip


@pytest.mark.parametrize("reply", GARBLED)
async def test_a_garbled_reply_to_a_write_raises_a_typed_error(
    redis_server: RedisServer, reply: bytes
) -> None:
    """add, delete and touch answered with a reply of the wrong form raise ``BackendError``
    naming it (not ``AttributeError``, ``ValueError``...: every error of the library is a
    ``TTAError``), and the memory goes on once replies are whole again."""
    async with garbling_relay(redis_server.port) as (url, garbler):
        memory = fast_recovery(url)
        try:
            await memory.add("u1:s1:a", {"content": "before"})
            garbler.reply = reply
            calls = {
                "add": lambda: memory.add("u1:s1:b", {"content": "garbled"}),
                "delete": lambda: memory.delete("u1:s1:a"),
                "touch": lambda: memory.touch("u1:s1:a", 3600),
            }
            if not reply.startswith((b"$", b"+")):  # (a string reads as a stored value)
                calls["get"] = lambda: memory.get("u1:s1:a")
            for name, call in calls.items():
                with pytest.raises(TTAError) as info:
                    await asyncio.wait_for(call(), 30)  # a hang guard
                assert isinstance(info.value, BackendError), (name, info.value)
                assert "cannot read" in str(info.value), (name, info.value)
            garbler.reply = None
            await memory.add("u1:s1:c", {"content": "after"})
            assert await memory.get("u1:s1:c") == {"content": "after"}
        finally:
            garbler.reply = None
            await memory.clear()
            await memory.aclose()


@pytest.mark.parametrize("reply", [b":7\r\n", b"+OK\r\n", b"$-1\r\n", b",1.5\r\n"])
async def test_a_garbled_reply_to_a_listing_or_search_raises_a_typed_error(
    redis_server: RedisServer, reply: bytes
) -> None:
    """forget, list_memories and search answered with replies of the wrong form raise
    ``BackendError`` (a ``TTAError``), not ``TypeError``/``IndexError``; the memory stays."""
    async with garbling_relay(redis_server.port) as (url, garbler):
        memory = fast_recovery(url)
        try:
            await memory.add("u1:s1:a", {"content": "garden notes"})
            assert await memory.search("garden")  # the search replica is loaded
            garbler.reply = reply
            calls = {
                "forget": lambda: memory.forget("u1"),
                "list": lambda: memory.list_memories("u1"),
                "search": lambda: memory.search("garden"),
            }
            for name, call in calls.items():
                with pytest.raises(TTAError) as info:
                    await asyncio.wait_for(call(), 30)  # a hang guard
                assert isinstance(info.value, BackendError), (name, info.value)
            garbler.reply = None
            assert await memory.get("u1:s1:a") == {"content": "garden notes"}
        finally:
            garbler.reply = None
            await memory.clear()
            await memory.aclose()


async def test_a_replay_answered_with_garbled_replies_keeps_the_journal(
    redis_server: RedisServer,
) -> None:
    """Writes journalled in an outage, then replayed while replies are garbled: the replay
    stops and keeps them; once replies are whole, every one lands."""
    async with garbling_relay(redis_server.port) as (url, garbler):
        memory = fast_recovery(url)
        try:
            await memory.add("u1:s1:0", {"content": "live"})
            garbler.down = True
            for i in range(20):
                await memory.add(f"u1:s1:{i}", {"content": f"journalled {i}"})
            assert not memory.using_redis
            garbler.reply, garbler.down = b":7\r\n", False
            assert not await asyncio.wait_for(memory.flush(), 30)
            garbler.reply = None
            await replayed(memory)
            for i in range(20):
                assert await memory.get(f"u1:s1:{i}") == {"content": f"journalled {i}"}
        finally:
            garbler.reply, garbler.down = None, False
            await memory.clear()
            await memory.aclose()


def test_a_process_ending_without_aclose_says_its_journalled_writes_are_lost(
    redis_server_factory: Any,
) -> None:
    """A worker that ends (or drops its memory) during an outage without ``aclose()`` loses the
    writes still journalled, as a crash would: it says so in the log instead of in silence."""
    import subprocess
    import sys
    import textwrap

    server = redis_server_factory()
    server.kill()
    code = f"""
        import asyncio
        from tta_dev_primitives import MemoryPrimitive

        async def main():
            memory = MemoryPrimitive({server.url!r}, namespace="exit", redis_timeout=0.5)
            for i in range(3):
                await memory.add(f"u1:s1:{{i}}", {{"content": "acknowledged"}})
            print(memory.get_backend_info()["journal_size"])

        asyncio.run(main())  # no aclose()
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
    assert "never closed: 3 writes journalled during an outage" in result.stderr, result.stderr


async def test_deleting_a_thread_in_an_outage_is_refused_not_done_from_the_copy(
    redis_server_factory: Any,
) -> None:
    """Another process wrote a thread's checkpoints; this one, which never read them, deletes
    the thread while Redis is down. Its in-process copy holds none of them: the delete must
    say it could not run, not return normally and leave the thread whole in Redis."""
    from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    written = run_python(f"""
        import asyncio
        from langgraph.checkpoint.base import empty_checkpoint
        from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

        async def main():
            saver = MemoryCheckpointSaver.from_url({server.url!r}, namespace={ns!r})
            config = {{"configurable": {{"thread_id": "t1", "checkpoint_ns": ""}}}}
            for step in range(3):
                config = await saver.aput(config, empty_checkpoint(), {{"step": step}}, {{}})
            print(len([c async for c in saver.alist({{"configurable": {{"thread_id": "t1"}}}})]))
            await saver.aclose()

        asyncio.run(main())
    """)
    assert written == "3"
    thread = {"configurable": {"thread_id": "t1"}}
    saver = MemoryCheckpointSaver(fast_recovery(server.url, ns))
    try:
        server.kill()
        with pytest.raises(IncompleteOperationError):
            await asyncio.wait_for(saver.adelete_thread("t1"), 30)  # a hang guard
        with pytest.raises(IncompleteOperationError):  # nor pruned by what the copy holds
            await asyncio.wait_for(saver.aprune(["t1"]), 30)
        server.start()
        await replayed(saver.memory)
        assert len([c async for c in saver.alist(thread)]) == 3  # nothing was half-deleted
        await saver.aprune(["t1"])
        assert len([c async for c in saver.alist(thread)]) == 1
        await saver.adelete_thread("t1")
        assert [c async for c in saver.alist(thread)] == []
    finally:
        await saver.aclose()


async def test_clearing_a_chat_session_in_an_outage_is_refused_not_done_from_the_copy(
    redis_server_factory: Any,
) -> None:
    """Another process wrote a session's messages; this one, which never read them, clears
    the session while Redis is down: it must say it could not, not return normally and leave
    every message in Redis."""
    from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    written = run_python(f"""
        import asyncio
        from langchain_core.messages import HumanMessage
        from tta_dev_primitives import MemoryPrimitive
        from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

        async def main():
            async with MemoryPrimitive({server.url!r}, namespace={ns!r}) as memory:
                history = MemoryChatMessageHistory(memory, "u1:s1")
                await history.aadd_messages([HumanMessage(f"turn {{i}}") for i in range(3)])
                print(len(await history.aget_messages()))

        asyncio.run(main())
    """)
    assert written == "3"
    memory = fast_recovery(server.url, ns)
    history = MemoryChatMessageHistory(memory, "u1:s1")
    try:
        server.kill()
        with pytest.raises(IncompleteOperationError):
            await asyncio.wait_for(history.aclear(), 30)  # a hang guard
        server.start()
        await replayed(memory)
        assert len(await history.aget_messages()) == 3  # nothing was half-cleared
        await history.aclear()
        assert await history.aget_messages() == []
    finally:
        await memory.aclose()


WORKER = """
import asyncio, json, os, random, sys, time
from tta_dev_primitives import MemoryPrimitive

url, ns, wid, signals = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def wait_for(name):
    while not os.path.exists(os.path.join(signals, name)):
        time.sleep(0.02)

def signal(name):
    open(os.path.join(signals, f"{name}.{wid}"), "w").close()

async def main():
    memory = MemoryPrimitive(url, namespace=ns, redis_timeout=0.5, recovery_interval=0.05,
                             max_recovery_interval=0.2, max_size=100_000)
    rnd, log, j = random.Random(wid), [], 0
    for phase in ("up", "killed", "restarted"):
        for _ in range(60):
            j += 1
            r = rnd.random()
            key = f"w{wid}:s:{j % 15}" if r < 0.8 else f"shared:s:{j % 3}"
            op = "delete" if r < 0.25 else "add"
            if op == "add":
                await memory.add(key, {"content": f"v {wid} {j}", "w": wid, "j": j})
            else:
                await memory.delete(key)
            log.append([op, key, wid, j, time.time()])
            if r > 0.97 and wid == 0:
                began = time.time()
                try:
                    await memory.forget("shared")
                    log.append(["forget", "shared", wid, j, began])
                except Exception:
                    log.append(["forget-failed", "shared", wid, j, time.time()])
        signal(phase)
        if phase != "restarted":
            wait_for(f"go-{phase}")
    while not (await memory.flush() and memory.using_redis):
        await asyncio.sleep(0.05)
    await memory.aclose()
    print(json.dumps(log))

asyncio.run(main())
"""


def test_writers_in_several_processes_keep_every_acknowledged_write_through_a_kill(
    redis_server_factory: Any, tmp_path: Any
) -> None:
    """Three processes add and delete (and one forgets) before, during and after Redis is
    SIGKILLed and restarted from its AOF: once all have replayed, each key holds what its last
    acknowledged write left, and no write acknowledged before a forget of its scope began is
    back."""
    import os
    import subprocess
    import sys
    import time

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, server.url, ns, str(w), str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        for w in range(3)
    ]  # fmt: skip

    def all_signalled(phase: str) -> None:
        deadline = time.monotonic() + 120  # a hang guard
        while not all((tmp_path / f"{phase}.{w}").exists() for w in range(3)):
            assert all(p.poll() is None for p in workers), "a worker died"
            assert time.monotonic() < deadline, f"the workers did not finish phase {phase!r}"
            time.sleep(0.05)

    try:
        all_signalled("up")
        server.kill()
        (tmp_path / "go-up").touch()
        all_signalled("killed")
        server.start()
        (tmp_path / "go-killed").touch()
        logs = []
        for worker in workers:
            out, _ = worker.communicate(timeout=180)
            assert worker.returncode == 0
            logs.append(json.loads(out))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    entries = sorted((e for log in logs for e in log), key=lambda e: e[4])
    assert len([e for e in entries if e[0] in ("add", "delete")]) == 3 * 180
    forgets = [e[4] for e in entries if e[0] == "forget"]
    last: dict[str, list[Any]] = {}
    for entry in entries:
        if entry[0] in ("add", "delete"):
            last[entry[1]] = entry

    async def check() -> None:
        from tta_dev_primitives import MemoryPrimitive

        async with MemoryPrimitive(server.url, namespace=ns, redis_timeout=5.0) as memory:
            for key, (op, _, w, j, _) in last.items():
                value = await memory.get(key)
                if key.startswith("w"):  # one writer: its last acknowledged write stands
                    expected = {"content": f"v {w} {j}", "w": w, "j": j}
                    assert value == (None if op == "delete" else expected), key
                elif value is not None:  # shared: none acknowledged before a forget began
                    written = next(
                        e
                        for e in entries
                        if e[1] == key and (e[2], e[3]) == (value["w"], value["j"])
                    )
                    assert not [f for f in forgets if f > written[4]], (key, value)

    asyncio.run(check())


async def test_a_cache_closed_with_an_unsent_clear_says_so(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A shared cache cleared during an outage (a new model: every output must go) and closed
    before Redis is back: its entries are only later misses, but the clear never reached
    Redis, where other processes still read what it was to remove. That is logged as an error,
    not dropped in silence."""
    from tta_dev_primitives import CachePrimitive

    server = redis_server_factory()

    async def step(text: str, context: Any) -> str:
        return text.upper()

    cache: Any = CachePrimitive(
        step, lambda text, context: text, backend=server.url, namespace=namespace(),
        redis_timeout=0.5,
    )  # fmt: skip
    from tta_dev_primitives.core import WorkflowContext

    await cache.execute("a", WorkflowContext())  # stored on Redis
    server.kill()
    await cache.clear()  # returns normally: journalled
    with caplog.at_level("ERROR"):
        await cache.aclose()
    assert any("clear made during an outage still unsent" in r.message for r in caplog.records)
