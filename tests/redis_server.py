"""Throwaway ``redis-server`` processes on free loopback ports, for tests and benchmarks.

Real servers, real signals: tests kill (SIGKILL), stall (SIGSTOP/SIGCONT) and restart them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LocalCluster",
    "LocalSentinel",
    "RedisServer",
    "SlotMove",
    "find_redis_server",
    "free_cluster_port",
    "free_port",
]


def find_redis_server() -> str | None:
    """Path of the ``redis-server`` binary (``$REDIS_SERVER`` wins), or ``None``."""
    return os.environ.get("REDIS_SERVER") or shutil.which("redis-server")


# Ports the servers listen on lie below Linux's ephemeral range (32768-60999 by default), from
# which the kernel picks the local port of every outgoing connection: a port chosen there could
# be taken by one of the test's own client sockets before the server binds it.
_SERVER_PORTS = (10_000, 19_999)
_CLUSTER_PORTS = (20_000, 22_767)  # and each one's bus port, 10000 above: 30000-32767


def _bindable(*ports: int) -> bool:
    try:
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is listening on right now."""
    import random

    for _ in range(200):
        port = random.randint(*_SERVER_PORTS)
        if _bindable(port):
            return port
    raise RuntimeError("no free port for a server")


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, as Redis Cluster needs."""
    import random

    for _ in range(200):
        port = random.randint(*_CLUSTER_PORTS)
        if _bindable(port, port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class _PortTaken(RuntimeError):
    """Another process bound the chosen port first."""


class RedisServer:
    """One ``redis-server`` child process with no persistence unless asked for."""

    def __init__(
        self,
        binary: str,
        *,
        port: int | None = None,
        pick_port: Callable[[], int] = free_port,
        password: str | None = None,
        appendonly: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.binary = binary
        # A port we chose is chosen again if another process takes it before the first start.
        self._pick_port = None if port else pick_port
        self.port = port or pick_port()
        self.password = password
        self.appendonly = appendonly
        self.extra = extra
        self.dir = Path(tempfile.mkdtemp(prefix="tta-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL for this server, with the password if one is set."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        return [*args, *self.extra]

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        for _ in range(5):
            try:
                started = self._start(timeout)
            except _PortTaken:
                assert self._pick_port is not None
                (self.dir / "redis.log").unlink(missing_ok=True)
                self.port = self._pick_port()
                continue
            self._pick_port = None  # restarts keep the port (a cluster node's config names it)
            return started
        raise RuntimeError("redis-server found its port taken five times")

    def _start(self, timeout: float) -> RedisServer:
        self.proc = subprocess.Popen(
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                if "Address already in use" in log and self._pick_port is not None:
                    raise _PortTaken(log)
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{log}")
            if self._answers_as_ours():  # it answers, and it is ours
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def ping(self) -> bool:
        """True if the server answers PING (or asks for auth, which means it is up)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _answers_as_ours(self) -> bool:
        """True if the server on our port is our process, not another suite's that bound it
        first (ours then exits with 'Address already in use', but may not have yet), and has
        loaded its data: INFO answers while an AOF loads, other commands get LOADING (a test
        that read right after a restart failed so on a busy machine)."""
        assert self.proc is not None
        request = b"INFO\r\n"  # (the default sections: server, then persistence)
        if self.password:
            request = f"AUTH {self.password}\r\n".encode() + request
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(request)
                reply, found, loading = b"", None, None
                while found is None or loading is None:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    reply += chunk
                    found = re.search(rb"process_id:(\d+)\r\n", reply)
                    loading = re.search(rb"\nloading:(\d)\r\n", reply)
        except OSError:
            return False
        return int(found[1]) == self.proc.pid and loading[1] == b"0"

    def kill(self) -> None:
        """SIGKILL the server and reap it (the port becomes free)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stall(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``stall``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """Stalled (``stall``) for the block, resumed however it ends: a failed assertion
        inside must not leave the server stopped for the tests after it."""
        self.stall()
        try:
            yield
        finally:
            self.resume()

    def calls(self, command: str) -> int:
        """How many times the server has run ``command`` (INFO commandstats, lower case)."""
        import redis

        client = redis.Redis(port=self.port, password=self.password)
        try:
            stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        finally:
            client.close()
        return int(stats.get("calls", 0))

    def restart(self) -> RedisServer:
        """Kill and start again on the same port and directory (AOF data survives)."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """Stop for good and remove the data directory. SIGKILL: nothing it holds is read
        again, and a graceful shutdown (AOF fsync, replicas waited for) took 0.1 s a node,
        most of a cluster test's teardown."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalSentinel(RedisServer):
    """One Redis Sentinel (``redis-server <config> --sentinel``) watching ``primary`` as
    ``service``, alone (quorum 1), quick to act: a primary silent for ``down_after_ms`` is
    down, and its replica is promoted."""

    def __init__(
        self,
        binary: str,
        primary: RedisServer,
        *,
        service: str = "mymaster",
        down_after_ms: int = 400,
        password: str | None = None,
    ) -> None:
        super().__init__(binary, password=password)
        self.primary = primary
        self.service = service
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL of the service, with the primary's password if it has one."""
        auth = f":{self.primary.password}@" if self.primary.password else ""
        query = f"?sentinel_password={self.password}" if self.password else ""
        return f"redis+sentinel://{auth}127.0.0.1:{self.port}/{self.service}/0{query}"

    def args(self) -> list[str]:
        config = self.dir / "sentinel.conf"  # Sentinel rewrites its config: one of its own
        service, auth = self.service, self.primary.password
        lines = [
            f"sentinel monitor {service} 127.0.0.1 {self.primary.port} 1",
            f"sentinel down-after-milliseconds {service} {self.down_after_ms}",
            f"sentinel failover-timeout {service} 2000",
            *([f"sentinel auth-pass {service} {auth}"] if auth else []),
        ]
        config.write_text("\n".join(lines) + "\n")
        args = [
            self.binary, str(config), "--sentinel",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def _answers_as_ours(self) -> bool:
        assert self.proc is not None
        return self.proc.poll() is None and self.ping()

    def primary_port(self) -> int:
        """The port of the primary this sentinel names now."""
        import redis

        client = redis.Redis(port=self.port, password=self.password)
        try:
            _, port = client.sentinel_get_master_addr_by_name(self.service)
        finally:
            client.close()
        return int(port)

    def wait_replica_known(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until the sentinel has found ``count`` of the primary's replicas (from the
        primary's INFO) and sees them up: before that it has none to promote."""
        import redis

        client = redis.Redis(port=self.port, password=self.password)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                replicas = client.sentinel_slaves(self.service)
                if (
                    sum(
                        not (r["is_sdown"] or r["is_odown"])
                        and r.get("master-link-status") == "ok"
                        and int(r.get("info-refresh", 10**9)) < 5000
                        for r in replicas
                    )
                    >= count
                ):
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise AssertionError(f"the sentinel found no replica within {timeout}s")

    def wait_promoted(self, old: int, timeout: float = 30.0) -> int:
        """Wait until the sentinel names a primary other than port ``old``; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port != old:
                return port
            time.sleep(0.05)
        raise AssertionError(f"Sentinel promoted no replica within {timeout}s")


class LocalCluster:
    """A real Redis Cluster on loopback: ``masters`` masters, each with ``replicas`` replicas."""

    def __init__(self, binary: str, *, masters: int = 3, replicas: int = 0) -> None:
        self.binary = binary
        self.cli = str(Path(binary).with_name("redis-cli"))
        self.masters, self.replicas = masters, replicas
        # No diskless-sync delay (5 s by default): a replica must be in sync before a test
        # kills its master, or it has nothing to take over with. A short node timeout makes a
        # killed master's replica take over fast; without replicas no failover can come of it,
        # and a node slow to answer pings on a busy machine (1.5 s) only took the whole cluster
        # down ("The cluster is down", at a test's teardown): Redis's own default there.
        timeout = "1500" if replicas else "15000"
        extra = ("--cluster-enabled", "yes", "--cluster-node-timeout", timeout,
                 "--repl-diskless-sync-delay", "0")  # fmt: skip
        self.nodes = [
            RedisServer(binary, pick_port=free_cluster_port, appendonly=True, extra=extra)
            for _ in range(masters * (1 + replicas))
        ]
        for node in self.nodes:
            node.extra = (*extra, "--cluster-config-file", str(node.dir / "nodes.conf"))

    @property
    def url(self) -> str:
        """A URL of one node: enough for a cluster client to discover the rest."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> LocalCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        self.wait_ok(timeout)
        self.wait_replicas_in_sync(timeout)
        return self

    def wait_replicas_in_sync(self, timeout: float = 30.0) -> None:
        """Wait until every replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [self.info(n, "info", "replication") for n in self.nodes]
            replicas = [s for s in states if "role:slave" in s]
            if len(replicas) == self.masters * self.replicas and all(
                "master_link_status:up" in s for s in replicas
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("replicas did not finish their initial sync")

    def info(self, node: RedisServer, *args: str) -> str:
        result = subprocess.run(
            [self.cli, "-p", str(node.port), *args],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return result.stdout

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live node reports cluster_state:ok."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
            if all("cluster_state:ok" in self.info(n, "cluster", "info") for n in live):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def wait_failover(self, victim: RedisServer, timeout: float = 30.0) -> None:
        """Wait until a killed master is flagged failed and its slots have moved to a replica."""
        live = next(n for n in self.nodes if n is not victim and n.proc and n.proc.poll() is None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.info(live, "cluster", "nodes").splitlines():
                fields = line.split()
                victim_line = len(fields) >= 8 and fields[1].startswith(f"127.0.0.1:{victim.port}@")
                if victim_line and "fail" in fields[2] and len(fields) == 8:  # owns no slots now
                    self.wait_ok(timeout)
                    return
            time.sleep(0.1)
        raise RuntimeError(f"no failover of 127.0.0.1:{victim.port} within {timeout}s")

    def move_slot(self, slot: int, to: RedisServer) -> None:
        """Reshard: move one hash slot, with its keys, to master ``to`` (as ``redis-cli
        --cluster reshard`` does: IMPORTING / MIGRATING, MIGRATE, then SETSLOT NODE on every
        master). Clients learn of it from the next MOVED."""
        with self.migrating(slot, to) as move:
            move.finish()

    @contextlib.contextmanager
    def migrating(self, slot: int, to: RedisServer) -> Iterator[SlotMove]:
        """A resharding of ``slot`` to master ``to`` left half-done for the block: the slot is
        MIGRATING on its owner and IMPORTING on ``to``; the block moves keys (``move``) and
        calls ``finish``. However the block ends the slot is finalised on ``to`` (with REPLACE
        for what a failed test left behind), so the cluster stays whole for the next test."""
        move = SlotMove(self, slot, to)
        try:
            yield move
        finally:
            move.close()

    def add_master(self, timeout: float = 30.0) -> RedisServer:
        """Start one more node (as the others are: same binary, modules and options) and meet
        it into the cluster as an empty master, as ``redis-cli --cluster add-node`` does; return
        once every node knows it. It owns no slot, so a client's slot map (``CLUSTER SLOTS``)
        does not name it until a slot is given to it. Stopped with the cluster."""
        import redis

        extra = list(self.nodes[0].extra)
        at = extra.index("--cluster-config-file") + 1
        node = RedisServer(self.binary, pick_port=free_cluster_port, appendonly=True)
        node.extra = (*extra[:at], str(node.dir / "nodes.conf"), *extra[at + 1 :])
        self.nodes.append(node)
        node.start()
        with redis.Redis(port=self.nodes[0].port) as first:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Every node (the new one too) lists every other, none still in handshake.
            views = [self.info(n, "cluster", "nodes") for n in self.nodes if n.proc is not None]
            if all(
                len(view.splitlines()) == len(views) and "handshake" not in view for view in views
            ):
                self.wait_ok(max(0.1, deadline - time.monotonic()))  # it knows every slot too
                return node
            time.sleep(0.1)
        raise RuntimeError(f"127.0.0.1:{node.port} did not join the cluster within {timeout}s")

    def master_nodes(self) -> list[RedisServer]:
        """The nodes that are masters right now."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None
                and "role:master" in self.info(n, "info", "replication")]  # fmt: skip

    def stop(self) -> None:
        for node in self.nodes:  # every node signalled first, then each reaped
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
        for node in self.nodes:
            node.stop()


class SlotMove:
    """One slot on its way between two masters (``LocalCluster.migrating``)."""

    def __init__(self, cluster: LocalCluster, slot: int, to: RedisServer) -> None:
        import redis

        self.slot = slot
        self.masters = {n.port: redis.Redis(port=n.port) for n in cluster.master_nodes()}
        self.ids = {port: c.execute_command("CLUSTER", "MYID") for port, c in self.masters.items()}
        owner = None
        any_master = next(iter(self.masters.values()))
        for lo, hi, first, *_ in any_master.execute_command("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                owner = int(first[1])
        if owner is None or owner == to.port:
            self.close()
            raise RuntimeError(f"slot {slot} is owned by {owner}, not moved to {to.port}")
        self.to = to.port
        self.src, self.dst = self.masters[owner], self.masters[to.port]
        self.finished = False
        self.dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.ids[owner])
        self.src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.ids[to.port])

    def keys_left(self) -> list[bytes]:
        """The slot's keys still on its old owner (at most 1,000)."""
        return list(self.src.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, 1000))

    def move(self, keys: list[bytes] | list[str], *, replace: bool = False) -> None:
        """MIGRATE ``keys`` (of the slot, still on the old owner) to the new one; BUSYKEY (a key
        of that name there already) raises unless ``replace``."""
        if keys:
            extra = ("REPLACE",) if replace else ()
            self.src.execute_command(
                "MIGRATE", "127.0.0.1", self.to, "", 0, 10_000, *extra, "KEYS", *keys
            )

    def finish(self, *, replace: bool = False) -> None:
        """Move the rest of the slot's keys, then give the slot to the new owner everywhere."""
        while keys := self.keys_left():
            self.move(keys, replace=replace)
        for c in self.masters.values():
            c.execute_command("CLUSTER", "SETSLOT", self.slot, "NODE", self.ids[self.to])
        self.finished = True

    def close(self) -> None:
        try:
            if not self.finished and hasattr(self, "to"):
                self.finish(replace=True)
        finally:
            for c in self.masters.values():
                c.close()


def print_report(
    cluster: LocalCluster, scenario: Callable[[LocalCluster], Coroutine[Any, Any, Any]]
) -> None:
    """The child side of a test run in a process of its own (a failover kills servers):
    ``scenario`` on the started ``cluster`` in a new event loop, the cluster stopped however
    it ends, and its report printed as JSON for the parent to read."""
    try:
        report = asyncio.run(scenario(cluster))
    finally:
        cluster.stop()
    print(json.dumps(report))


def run_report(script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """The parent side of ``print_report``: the test script ``script`` (beside this file) run
    with ``args`` in a fresh interpreter, and the report it printed last."""
    import subprocess
    import sys

    path = Path(__file__).with_name(script)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", str(path), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
