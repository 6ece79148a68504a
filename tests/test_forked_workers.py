"""Workers forked after import (gunicorn, uvicorn, multiprocessing on Linux) are processes of
their own: their turn keys never repeat one another's, and a memory made before the fork (as
with ``gunicorn --preload``) tells one worker's writes from another's.

Each scenario runs in a fresh interpreter (``run_python``) that forks with ``os.fork`` before
any thread starts, as a server's master does; the test process itself never forks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import namespace, run_python
from redis_server import RedisServer

# Children wait for the parent's go, so that they run at once; each reports on its own pipe.
FORK = """
import json, os

def fork(work):
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w); os.close(out_r)
        os.read(go_r, 1)
        try:
            result = work()
        except BaseException as exc:
            result = repr(exc)
        with os.fdopen(out_w, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(go_r); os.close(out_w)
    return pid, go_w, out_r

def start(child):
    os.write(child[1], b"g")

def result(child):
    pid, _, out_r = child
    with os.fdopen(out_r) as out:
        data = json.load(out)
    os.waitpid(pid, 0)
    return data

def workers(work, n=2):
    # Fork n workers, let them run work at once, and return what each reported.
    children = [fork(work) for _ in range(n)]
    for child in children:
        start(child)
    return [result(child) for child in children]

def workers_while_held(work, *locks, n=2):
    # workers(work, n), forked while another thread holds these locks (as a thread pre-empted
    # inside a call would): no thread of a worker ever releases them.
    import contextlib, threading
    held, release = threading.Event(), threading.Event()
    def holding():
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            held.set()
            release.wait(60)
    thread = threading.Thread(target=holding, daemon=True)
    thread.start()
    assert held.wait(30)
    try:
        return workers(work, n)
    finally:
        release.set()
        thread.join(30)
"""


def test_forked_workers_never_make_the_same_turn_key() -> None:
    """Three workers forked from a process that already made keys each make 5,000 at once:
    no key repeats, and each process's keys carry a tag of its own."""
    code = (
        FORK
        + """
from tta_dev_primitives import turn_key

mine = [turn_key("u1", "s1") for _ in range(10)]
theirs = workers(lambda: [turn_key("u1", "s1") for _ in range(5000)], 3)
every = mine + [key for keys in theirs for key in keys]
tags = [sorted({key.split(":")[2][13:19] for key in keys}) for keys in [mine, *theirs]]
print(json.dumps({"keys": len(every), "distinct": len(set(every)), "tags": tags}))
"""
    )
    report = json.loads(run_python(code))
    assert report["keys"] == 15_010
    assert report["distinct"] == report["keys"]
    tags = [tag for process in report["tags"] for tag in process]
    assert len(tags) == 4  # one tag a process
    assert len(set(tags)) == 4, tags


def test_workers_forked_after_a_large_memory_analyse_their_own() -> None:
    """A master that added a large memory (analysed on a worker thread) before forking: each
    worker's own large memories are analysed too. Its copy of the thread pool counted the
    master's idle thread, which a fork does not copy, so every such add waited forever."""
    code = (
        FORK
        + """
import asyncio, signal
from tta_dev_primitives import MemoryPrimitive

LARGE = {"content": "garden " * 2000}

async def add_and_search(key):
    memory = MemoryPrimitive()
    await memory.add(key, LARGE)
    return len(await memory.search("garden"))

def worker():
    signal.alarm(60)  # a hung add ends the worker, and the parent reads no result
    return asyncio.run(add_and_search("u:s:worker"))

asyncio.run(add_and_search("u:s:master"))
print(json.dumps(workers(worker)))
"""
    )
    assert json.loads(run_python(code)) == [1, 1]


@pytest.mark.redis
def test_a_memory_made_before_the_fork_drops_what_a_sibling_worker_overwrote(
    redis_server: RedisServer,
) -> None:
    """``memory`` is made at import, before the workers fork. Worker A stores a memory; worker
    B overwrites it. A's copy check must see B's write as another process's and drop A's old
    copy, so that A's next outage never serves it (were their write versions the parent's,
    B's would pass for A's own and the old copy would stay)."""
    ns = namespace()
    code = (
        FORK
        + f"""
import asyncio, time
from tta_dev_primitives import MemoryPrimitive

memory = MemoryPrimitive({redis_server.url!r}, namespace={ns!r}, redis_timeout=10.0)

def worker_a():
    async def run():
        await memory.add("u1:s1:pet", {{"content": "my pet is a cat"}})
        os.write(ready_w, b"r")
        os.read(overwritten_r, 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await memory.size()  # a call Redis answers runs the copy check (once a second)
            if memory.get_backend_info()["copies_dropped"]:
                break
            await asyncio.sleep(0.05)
        info = memory.get_backend_info()
        await memory.aclose()
        return info["copies_dropped"]
    return asyncio.run(run())

def worker_b():
    async def run():
        await memory.add("u1:s1:pet", {{"content": "my pet is a dog"}})
        await memory.aclose()
        return "overwrote"
    return asyncio.run(run())

ready_r, ready_w = os.pipe()
overwritten_r, overwritten_w = os.pipe()
a = fork(worker_a)
start(a)
os.read(ready_r, 1)
b = fork(worker_b)
start(b)
wrote = result(b)
os.write(overwritten_w, b"o")
dropped = result(a)

async def check():
    reader = MemoryPrimitive({redis_server.url!r}, namespace={ns!r})
    value = await reader.get("u1:s1:pet")
    await reader.clear()
    await reader.aclose()
    return value

print(json.dumps({{"b": wrote, "dropped": dropped, "stored": asyncio.run(check())}}))
"""
    )
    report = json.loads(run_python(code))
    assert report["b"] == "overwrote"
    assert report["stored"] == {"content": "my pet is a dog"}
    assert report["dropped"] == 1


def test_a_journal_opened_before_the_fork_is_refused_in_the_workers(tmp_path: Path) -> None:
    """A memory with ``journal_path`` made before the workers fork: the journal (its lock, its
    file) belongs to the process that opened it. Two workers appending to it would overwrite
    each other's acknowledged writes, so in a worker its first use raises ``JournalError``
    saying to make the memory after the fork; the parent's journal keeps working."""
    path = tmp_path / "journal.jsonl"
    code = (
        FORK
        + f"""
import asyncio
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import JournalError

# Redis unreachable: every add is journalled.
memory = MemoryPrimitive("redis://127.0.0.1:1/0", namespace="fork", redis_timeout=0.2,
                         journal_path={str(path)!r})

def worker():
    async def run():
        try:
            await memory.add("u1:s1:child", {{"content": "from a worker"}})
        except JournalError as exc:
            return "JournalError: " + str(exc)
        return "stored"
    return asyncio.run(run())

said = workers(worker)

async def parent():
    await memory.add("u1:s1:parent", {{"content": "from the parent"}})
    await memory.aclose()

asyncio.run(parent())
print(json.dumps({{"children": said, "journal": open({str(path)!r}).read()}}))
"""
    )
    report = json.loads(run_python(code))
    for said in report["children"]:
        assert said.startswith("JournalError: "), said
        assert "after the fork" in said
    assert "u1:s1:parent" in report["journal"]
    assert "u1:s1:child" not in report["journal"]


def test_workers_forked_after_a_sync_call_make_sync_calls_of_their_own() -> None:
    """A master that used a sync adapter (a LangChain chat history) before forking, as an app
    loaded with ``gunicorn --preload`` may: each worker's sync calls run too. Its copy of the
    portal's event loop looked alive, but the thread that ran it exists only in the master, so
    every sync call waited forever on a loop no thread runs."""
    pytest.importorskip("langchain_core")
    code = (
        FORK
        + """
import signal
from langchain_core.messages import HumanMessage
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

history = MemoryChatMessageHistory(MemoryPrimitive(), "master")
history.add_messages([HumanMessage("from the master")])

def worker():
    signal.alarm(60)  # a hung call ends the worker, and the parent reads no result
    mine = MemoryChatMessageHistory(MemoryPrimitive(), "worker")
    mine.add_messages([HumanMessage("from a worker")])
    return [message.content for message in mine.messages]

said = workers(worker)
history.add_messages([HumanMessage("again")])  # the master's portal still runs
print(json.dumps({"workers": said, "master": [m.content for m in history.messages]}))
"""
    )
    assert json.loads(run_python(code)) == {
        "workers": [["from a worker"], ["from a worker"]],
        "master": ["from the master", "again"],
    }


@pytest.mark.redis
def test_a_worker_closes_a_memory_the_master_used_through_a_sync_call(
    redis_server: RedisServer,
) -> None:
    """The master used a Redis memory through a sync adapter (on its portal loop) before the
    workers forked. A worker's ``aclose`` asked the master's portal loop, which no thread runs
    in the worker, to close that loop's client (writing to the self-pipe the two processes
    share), and waited ``redis_timeout`` + 1 s for an answer that never came: a worker's
    shutdown outlasted a server's grace period."""
    pytest.importorskip("langchain_core")
    ns = namespace()
    code = (
        FORK
        + f"""
import asyncio, signal
from langchain_core.messages import HumanMessage
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

memory = MemoryPrimitive({redis_server.url!r}, namespace={ns!r}, redis_timeout=600.0)
history = MemoryChatMessageHistory(memory, "master")
history.add_messages([HumanMessage("from the master")])

def worker():
    signal.alarm(60)  # a hung close ends the worker, and the parent reads no result
    mine = MemoryChatMessageHistory(memory, "worker" + str(os.getpid()))
    mine.add_messages([HumanMessage("from a worker")])
    said = [message.content for message in mine.messages]
    asyncio.run(memory.aclose())
    return said

said = workers(worker)
history.add_messages([HumanMessage("again")])
master = [message.content for message in history.messages]

async def done():
    await memory.clear()
    await memory.aclose()

asyncio.run(done())
print(json.dumps({{"workers": said, "master": master}}))
"""
    )
    assert json.loads(run_python(code)) == {
        "workers": [["from a worker"], ["from a worker"]],
        "master": ["from the master", "again"],
    }


def test_a_worker_forked_while_a_thread_stamped_a_message_stores_its_own() -> None:
    """The master forks while another of its threads is inside the chat history's message
    clock (holding its lock, as a thread pre-empted there would). No thread of a worker ever
    releases that lock: its first ``add_messages`` waited forever (``turn_key``'s lock was
    already made free again in a child)."""
    pytest.importorskip("langchain_core")
    code = (
        FORK
        + """
import asyncio, signal
from langchain_core.messages import HumanMessage
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations import langchain
from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

def worker():
    signal.alarm(30)  # a hung write ends the worker, and the parent reads no result
    async def run():
        history = MemoryChatMessageHistory(MemoryPrimitive(), "u1:s1")
        await history.aadd_messages([HumanMessage("from a worker")])
        return [message.content for message in await history.aget_messages()]
    return asyncio.run(run())

said = workers_while_held(worker, langchain._clock._lock)  # the message clock's
print(json.dumps(said))
"""
    )
    assert json.loads(run_python(code)) == [["from a worker"], ["from a worker"]]


def test_a_worker_closes_a_journalled_memory_the_master_used(tmp_path: Path) -> None:
    """The master journalled a write (Redis down) before the workers forked. A worker's
    ``aclose`` ran its file checks on the journal's thread pool, whose copy in the worker
    counted the master's idle thread, which a fork does not copy: it waited forever. The
    master's journal keeps its write for the next process either way."""
    path = tmp_path / "journal.jsonl"
    code = (
        FORK
        + f"""
import asyncio, signal
from tta_dev_primitives import MemoryPrimitive

memory = MemoryPrimitive("redis://127.0.0.1:1/0", namespace="fork", redis_timeout=0.2,
                         journal_path={str(path)!r})
asyncio.run(memory.add("u1:s1:parent", {{"content": "from the parent"}}))

def worker():
    signal.alarm(60)  # a hung close ends the worker, and the parent reads no result
    asyncio.run(memory.aclose())
    return "closed"

said = workers(worker)

async def parent():
    await memory.add("u1:s1:later", {{"content": "after the fork"}})
    await memory.aclose()

asyncio.run(parent())
print(json.dumps({{"children": said, "journal": open({str(path)!r}).read()}}))
"""
    )
    report = json.loads(run_python(code))
    assert report["children"] == ["closed", "closed"]
    assert "u1:s1:parent" in report["journal"]
    assert "u1:s1:later" in report["journal"]
