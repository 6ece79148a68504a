"""What a search returns when the Query Engine's own query timeout cuts it short.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_engine_timeout.py --size 100000``.

The benchmarks and tests start RediSearch with ``TIMEOUT 0`` (no limit); a server as shipped
has ``TIMEOUT 500`` (ms) and an ``ON_TIMEOUT`` policy (``RETURN``: the results found so far,
as if complete; ``FAIL``: an error). This loads ``--size`` chitchat turns (the benchmarks'
bulk path), takes each question's answer with no limit, then sets the engine's ``TIMEOUT``
low enough to be hit and counts, per policy, answers that differ, raise, or fall back. Each
query the library sends names its own ``TIMEOUT``, past the client's (``Shard.tail``), so none
should: before that, with the limit at 2 ms and 100,000 memories, 8 of 50 unscoped answers
differed under ``RETURN`` (nothing said so) and 18 of 50 raised under ``FAIL``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

import bench_scaleout as bs  # noqa: E402
from tta_dev_primitives import MemoryPrimitive  # noqa: E402


async def answers(url: str, qs: list[str], users: list[str | None]) -> list[object]:
    memory = MemoryPrimitive(url, namespace=bs.namespace("redis"), search_engine="redis")
    out: list[object] = []
    for q, u in zip(qs, users, strict=True):
        try:
            found = await memory.search_items(q, 10, scope=u)
            info = memory.get_backend_info()
            fell = info["degraded"] or not memory.using_redis
            out.append("fell back" if fell else [k for k, _ in found])
        except Exception as exc:
            out.append(f"raised {type(exc).__name__}: {str(exc)[:120]}")
    await memory.aclose()
    return out


async def main(args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis

    from _corpus import load_turns, questions
    from query_engine_server import find_redis_stack
    from redis_server import RedisServer

    binary, module, described = find_redis_stack()  # type: ignore[misc]
    server = RedisServer(binary, extra=("--loadmodule", module)).start()  # shipped defaults
    try:
        raw = aioredis.Redis.from_url(server.url, socket_timeout=600)
        print(
            described,
            await raw.execute_command("FT.CONFIG", "GET", "TIMEOUT"),
            await raw.execute_command("FT.CONFIG", "GET", "ON_TIMEOUT"),
            flush=True,
        )
        corpus = load_turns(args.size)
        t = await bs.load_ours(server.url, "redis", corpus.turns)
        print(f"loaded {args.size:,} in {t:.1f} s", flush=True)
        qs = questions(corpus, args.questions, sample=min(args.size, 100_000))
        scopes: dict[str, list[str | None]] = {
            "unscoped": [None] * len(qs),
            "user": [f"u{(i * 37) % corpus.users}" for i in range(len(qs))],
        }
        await raw.execute_command("FT.CONFIG", "SET", "TIMEOUT", "0")
        truth = {k: await answers(server.url, qs, u) for k, u in scopes.items()}
        for policy in ("RETURN", "FAIL"):
            await raw.execute_command("FT.CONFIG", "SET", "ON_TIMEOUT", policy)
            await raw.execute_command("FT.CONFIG", "SET", "TIMEOUT", str(args.timeout_ms))
            for label, users in scopes.items():
                t0 = time.perf_counter()
                got = await answers(server.url, qs, users)
                ms = (time.perf_counter() - t0) * 1e3 / len(qs)
                same = sum(a == b for a, b in zip(got, truth[label], strict=True))
                raised = [a for a in got if isinstance(a, str) and a.startswith("raised")]
                fell = sum(a == "fell back" for a in got)
                wrong = len(qs) - same - len(raised) - fell
                print(f"TIMEOUT {args.timeout_ms} ms, ON_TIMEOUT {policy}, {label}: "
                      f"{same} of {len(qs)} as with no limit, {wrong} other answers given as "
                      f"complete, {len(raised)} raised, {fell} fell back; {ms:.1f} ms/search"
                      + (f"; e.g. {raised[0]}" if raised else ""), flush=True)  # fmt: skip
        await raw.aclose()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--timeout-ms", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
