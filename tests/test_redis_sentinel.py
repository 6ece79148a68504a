"""Redis Sentinel (``redis+sentinel://``): the primary Sentinel names is used, a failover loses
no write that returned, and passwords never show. Real servers: a primary, its replica and a
sentinel, each a ``redis-server`` process."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from conftest import eventually, fast_recovery, namespace, replayed
from redis_server import LocalSentinel, RedisServer
from sentinel_writer import keep_writing
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendUnavailableError, InvalidArgumentError
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._urls import check_redis_url, redact_url, sentinel_target

pytestmark = pytest.mark.redis

Service = tuple[RedisServer, RedisServer, LocalSentinel]


def in_sync(primary: RedisServer, replicas: int = 1) -> None:
    """Wait until ``primary`` has ``replicas`` online replicas (ROLE lists them)."""
    client = redis_sync.Redis(port=primary.port, password=primary.password)
    try:
        for _ in range(400):
            if len(client.execute_command("ROLE")[2]) >= replicas:
                return
            time.sleep(0.05)
        raise AssertionError("the replica did not come in sync")
    finally:
        client.close()


@pytest.fixture
def service(redis_binary: str) -> Iterator[Callable[..., Service]]:
    """``make(password=None, sentinel_password=None)``: a primary, its replica in sync and a
    sentinel watching them; all stopped after the test."""
    started: list[RedisServer] = []

    def make(
        password: str | None = None,
        sentinel_password: str | None = None,
        primary_extra: tuple[str, ...] = (),
        replica_extra: tuple[str, ...] = (),
        replicas: int = 1,
    ) -> Service:
        auth = ("--masterauth", password) if password else ()
        # No diskless-sync delay (5 s by default): the replica is in sync at once.
        primary = RedisServer(
            redis_binary, password=password,
            extra=("--repl-diskless-sync-delay", "0", *auth, *primary_extra),
        ).start()  # fmt: skip
        started.append(primary)
        made = []
        for _ in range(replicas):
            made.append(RedisServer(
                redis_binary, password=password,
                extra=("--replicaof", "127.0.0.1", str(primary.port), "--repl-diskless-sync-delay",
                       "0", *auth, *replica_extra),
            ).start())  # fmt: skip
            started.append(made[-1])
        in_sync(primary, replicas)
        sentinel = LocalSentinel(redis_binary, primary, password=sentinel_password).start()
        started.append(sentinel)
        sentinel.wait_replica_known(replicas)
        return primary, made[0], sentinel

    yield make
    for server in reversed(started):
        server.stop()


async def stored_on(port: int, ns: str, keys: list[str], password: str | None = None) -> list[str]:
    """The keys of ``keys`` that the Redis on ``port`` does not hold: read by a backend, which
    raises if Redis cannot answer (a MemoryPrimitive would read its in-process store)."""
    auth = f":{password}@" if password else ""
    reader = RedisBackend(f"redis://{auth}127.0.0.1:{port}/0", namespace=ns, timeout=10.0)
    try:
        return [key for key in keys if await reader.get(key) is None]
    finally:
        await reader.aclose()


def test_a_sentinel_url_is_read_as_its_parts() -> None:
    """Sentinels with and without ports (26379 by default), IPv6, the service and database,
    and both sets of credentials, percent-decoded."""
    url = "redis+sentinel://app:p%40ss@s1,s2:26380,[::1]:26381/my%20master/2?sentinel_password=sp"
    target = sentinel_target(check_redis_url(url))
    assert target.sentinels == [("s1", 26379), ("s2", 26380), ("::1", 26381)]
    assert (target.service, target.db) == ("my master", 2)
    assert (target.username, target.password) == ("app", "p@ss")
    assert (target.sentinel_username, target.sentinel_password) == (None, "sp")
    bare = sentinel_target(check_redis_url("redis+sentinel://secret@h/svc"))
    assert (bare.username, bare.password, bare.db) == (None, "secret", 0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h:26379", "no service name"),
        ("redis+sentinel://h:26379/", "no service name"),
        ("redis+sentinel://h:99999/m", "port must be 1-65535"),
        ("redis+sentinel://h:x/m", "port must be 1-65535"),
        ("redis+sentinel://,h/m", "host[:port]"),
        ("redis+sentinel://h/m/zero", "database must be a number"),
        ("redis+sentinel://h/m?socket_timeout=1", "socket_timeout is not an option"),
        ("redis+sentinel://h/m#frag", "no '#' part"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_by_name(url: str, problem: str) -> None:
    """Each problem gets an ``InvalidArgumentError`` that names it, at construction."""
    with pytest.raises(InvalidArgumentError, match="invalid redis_url") as caught:
        MemoryPrimitive(url)
    assert problem in str(caught.value)


def test_sentinel_passwords_are_never_shown() -> None:
    """Neither the Redis password nor the sentinels' shows in the redacted URL or in an error
    about the URL, however malformed."""
    url = "redis+sentinel://app:hunter2@h/m?sentinel_password=swordfish"
    assert "hunter2" not in redact_url(url)
    assert "swordfish" not in redact_url(url)
    for bad in (url + "&timeout=1", url.replace("/m?", "/?"), url.replace("@h/", "@h:0/")):
        with pytest.raises(InvalidArgumentError) as caught:
            check_redis_url(bad)
        assert "hunter2" not in str(caught.value)
        assert "swordfish" not in str(caught.value)


async def test_a_memory_uses_the_primary_the_sentinel_names(
    service: Callable[..., Service],
) -> None:
    """Writes through the sentinel URL reach the primary (and its replica), with passwords on
    Redis and on the sentinel."""
    primary, _, sentinel = service(password="hunter2", sentinel_password="swordfish")
    ns = namespace()
    memory = MemoryPrimitive(sentinel.url, namespace=ns, redis_timeout=2.0)
    await memory.add("u1:s1:0", {"content": "hiking in the alps"})
    assert memory.using_redis
    assert [k for k, *_ in await memory.search_scored("alps hiking")] == ["u1:s1:0"]
    assert await stored_on(primary.port, ns, ["u1:s1:0"], "hunter2") == []
    await memory.aclose()


async def test_an_unreachable_sentinel_is_an_outage_that_shows_no_password(
    service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong sentinel password, or no sentinel answering: calls are served in-process (a
    backend raises ``BackendUnavailableError``), and no message holds either password; once
    the sentinel answers, the journal is replayed on the primary."""
    primary, _, sentinel = service(password="hunter2", sentinel_password="swordfish")
    wrong = sentinel.url.replace("swordfish", "notswordfish")
    backend = RedisBackend(wrong, namespace=namespace(), timeout=1.0)
    with pytest.raises(BackendUnavailableError) as caught:
        await backend.get("k")
    await backend.aclose()
    assert "swordfish" not in str(caught.value)
    assert "hunter2" not in str(caught.value)

    ns = namespace()
    sentinel.stall()
    try:
        with caplog.at_level(logging.DEBUG):
            memory = fast_recovery(sentinel.url, ns)
            await memory.add("u1:s1:0", {"content": "written while no sentinel answers"})
            assert not memory.using_redis
    finally:
        sentinel.resume()
    await replayed(memory)
    assert await stored_on(primary.port, ns, ["u1:s1:0"], "hunter2") == []
    await memory.aclose()
    shown = caplog.text
    assert "swordfish" not in shown
    assert "hunter2" not in shown
    assert "***" in shown  # the outage was logged, with the URL redacted


async def fail_over_while_writing(
    memory: MemoryPrimitive, primary: RedisServer, sentinel: LocalSentinel, within: float
) -> tuple[int, list[str]]:
    """Eight writers on ``memory``; ``SENTINEL FAILOVER`` once 50 writes returned, and 50 more
    after the promotion (each waited for at most ``within`` s, the replay at most twice that).
    The new primary's port and the keys whose add returned; no call raised."""
    written: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    writers = asyncio.create_task(keep_writing(memory, "", stop.is_set, written, errors))
    await eventually(lambda: len(written) >= 50, within=within)
    client = redis_sync.Redis(port=sentinel.port)
    assert client.execute_command("SENTINEL", "FAILOVER", sentinel.service)
    client.close()
    new = await asyncio.to_thread(sentinel.wait_promoted, primary.port)
    count = len(written)
    await eventually(lambda: len(written) >= count + 50, within=within)  # writes after it
    stop.set()
    await writers
    await replayed(memory, within=2 * within)
    assert errors == []
    return new, written


async def test_a_demoted_primary_sends_writes_to_the_new_one(
    service: Callable[..., Service],
) -> None:
    """``SENTINEL FAILOVER`` while writers run: the memory goes on with the new primary, and
    nothing that returned is missing there. The old primary stays up between its replica's
    promotion and its own demotion; with ``min-replicas-to-write 1`` (production.md) it refuses
    writes then (NOREPLICAS: journalled, replayed on the new primary). Without it, what it took
    in that window is lost: 1 run in 5 of this test, before that setting. On every primary, as
    production.md says: the promoted one too (it had it on the old one only, and a loaded run
    lost 4 writes once; review R27 suspects a second failover before the new primary had a
    replica, so that what it took meanwhile went with it)."""
    setting = ("--min-replicas-to-write", "1")
    primary, replica, sentinel = service(primary_extra=setting, replica_extra=setting)
    ns = namespace()
    memory = fast_recovery(sentinel.url, ns, redis_timeout=1.0)
    new, written = await fail_over_while_writing(memory, primary, sentinel, within=30)
    assert new == replica.port
    assert await stored_on(new, ns, written) == []
    await memory.add("u9:s:after", {"content": "after the failover"})
    assert memory.using_redis
    assert await stored_on(new, ns, ["u9:s:after"]) == []
    await memory.aclose()


async def test_with_two_replicas_the_setting_is_their_number(
    service: Callable[..., Service],
) -> None:
    """Review R27: with two replicas and ``min-replicas-to-write 1``, a ``SENTINEL FAILOVER``
    lost 19-85 of ~300 acknowledged writes: after one replica's promotion the old primary still
    had the other in sync, so it took writes and ``WAIT 1`` confirmed them, until that replica
    resynced from the new primary. With the setting at the number of replicas (production.md),
    the old primary refuses them (NOREPLICAS: journalled, replayed on the new one)."""
    setting = ("--min-replicas-to-write", "2")
    primary, _, sentinel = service(primary_extra=setting, replica_extra=setting, replicas=2)
    ns = namespace()
    memory = fast_recovery(sentinel.url, ns, redis_timeout=1.0)
    new, written = await fail_over_while_writing(memory, primary, sentinel, within=60)
    assert await stored_on(new, ns, written) == []
    await memory.aclose()


def test_a_failover_loses_no_write_from_several_processes(
    service: Callable[..., Service], tmp_path: Path
) -> None:
    """Three processes of eight writers each; the primary is killed mid-stream and Sentinel
    promotes its replica. Every call returns, and every write that returned is on the new
    primary once each process has replayed what it journalled."""
    primary, replica, sentinel = service()
    ns = namespace()
    script = Path(__file__).with_name("sentinel_writer.py")
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore::ResourceWarning",
                str(script),
                sentinel.url,
                ns,
                f"w{n}",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-w{n}").exists() for n in range(3)):
            assert time.monotonic() < deadline, "the writers did not start"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.05)
        time.sleep(0.3)
        primary.kill()
        assert sentinel.wait_promoted(primary.port) == replica.port
        time.sleep(1.0)  # writes to the new primary
        (tmp_path / "stop").touch()
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=150)
            assert worker.returncode == 0, err[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            worker.kill()
    written = [key for report in reports for key in report["written"]]
    assert [report["errors"] for report in reports] == [[], [], []]
    assert all(len(report["written"]) >= 50 for report in reports)
    assert asyncio.run(stored_on(replica.port, ns, written)) == []
