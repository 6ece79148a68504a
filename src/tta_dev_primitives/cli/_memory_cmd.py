"""``tta-primitives memory ...``: look into and manage a memory without writing code.

Works on a namespace in Redis (``--redis-url``) or on a JSONL file used as an in-process store
(``--file``). Errors are one line on stderr with a non-zero status, never a traceback or a
password. Export/import lines are ``{"key": ..., "value": {...}, "ttl": seconds or null}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tta_dev_primitives.exceptions import TTAError
from tta_dev_primitives.performance._memory import MemoryPrimitive


class CommandError(Exception):
    """A problem to report in one line, with this exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("memory", help="inspect and manage a memory (Redis or a JSONL file)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--redis-url", default=os.environ.get("TTA_REDIS_URL"),
                       help="Redis URL (default: $TTA_REDIS_URL)")  # fmt: skip
    where.add_argument("--file", type=Path, help="a JSONL file used as an in-process store")
    parser.add_argument("--namespace", default="tta:memory", help="default: tta:memory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    commands.add_parser("stats", help="count, backend, namespace, bytes")
    get = commands.add_parser("get", help="one memory")
    get.add_argument("key")
    search = commands.add_parser("search", help="ranked search")
    search.add_argument("query")
    search.add_argument("--scope")
    search.add_argument("--limit", type=int, default=5)
    delete = commands.add_parser("delete", help="remove one memory")
    delete.add_argument("key")
    clear = commands.add_parser("clear", help="remove every memory of the namespace")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    export = commands.add_parser("export", help="write every memory as JSONL")
    export.add_argument("output", nargs="?", default="-", help="a path, or - for stdout")
    load = commands.add_parser("import", help="add memories from JSONL")
    load.add_argument("input", help="a path, or - for stdin")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Blocking work (prompts, the JSONL store's file) happens here, outside the event loop."""
    # The library's fallback warning would repeat what this command reports in its own line.
    logging.getLogger("tta_dev_primitives").addHandler(logging.NullHandler())
    try:
        if args.action == "clear" and not args.yes:
            confirm_clear(args.namespace)
        rows = read_store(args.file) if args.file is not None else []
        saved = asyncio.run(dispatch(args, rows))
        if saved is not None and args.file is not None:
            write_store(args.file, saved)
        return 0
    except CommandError as exc:
        print(f"tta-primitives memory: {exc}", file=sys.stderr)
        return exc.status
    except (TTAError, ValueError, TypeError, OSError) as exc:
        print(f"tta-primitives memory: {exc}", file=sys.stderr)
        return 1


async def dispatch(
    args: argparse.Namespace, rows: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """Run the action; for a file store that changed, return its rows to write back."""
    if not args.redis_url and not args.file:
        raise CommandError("say where the memory is: --redis-url URL or --file PATH", 2)
    if args.file is not None:
        memory = MemoryPrimitive(max_size=10_000_000, namespace=args.namespace)
        for row in rows:
            await memory.add(row["key"], row["value"], row.get("ttl"))
    else:
        memory = MemoryPrimitive(args.redis_url, namespace=args.namespace, redis_timeout=2.0,
                                 max_size=1)  # fmt: skip
    try:
        try:
            changed = await ACTIONS[args.action](memory, args)
        finally:
            # An operator asked about Redis: a fallback is an error, reported before anything
            # the action itself concluded from the in-process stand-in.
            info = memory.get_backend_info()
            if info["degraded"]:
                raise CommandError(str(info["last_error"]))
        saved = None
        if changed and args.file is not None:
            saved = [{"key": k, "value": v, "ttl": _ms(t)} async for k, v, t in memory.items()]
    finally:
        await memory.aclose()
    return saved


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


async def stats(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    count, size = 0, 0
    async for _, value, _ in memory.items():
        count += 1
        size += len(json.dumps(value, ensure_ascii=False).encode())
    info = memory.get_backend_info()
    data = {"count": count, "backend": "redis" if args.redis_url else "file",
            "namespace": info["namespace"], "value_bytes": size,
            "url": info["url"], "file": str(args.file) if args.file else None}  # fmt: skip
    where = info["url"] or args.file
    emit(args, data, f"{count} memories, {size:,} bytes of values, namespace {info['namespace']!r}"
                     f" ({data['backend']}: {where})")  # fmt: skip
    return False


async def get(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    value = await memory.get(args.key)
    if value is None:
        raise CommandError(f"no memory under {args.key!r}")
    emit(args, value, json.dumps(value, ensure_ascii=False, indent=2))
    return False


async def search(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    found = await memory.search_items(args.query, args.limit, scope=args.scope)
    rows = [{"key": key, "value": value} for key, value in found]
    text = "\n".join(f"{key}  {json.dumps(value, ensure_ascii=False)}" for key, value in found)
    emit(args, rows, text or "(no match)")
    return False


async def delete(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    removed = await memory.delete(args.key)
    emit(args, {"deleted": removed}, "deleted" if removed else f"no memory under {args.key!r}")
    return removed


async def clear(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    await memory.clear()
    emit(args, {"cleared": True}, "cleared")
    return True


async def export(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    count = 0
    with open_output(args.output) as out, Progress("exported") as progress:
        async for key, value, ttl in memory.items():
            out.write(json.dumps({"key": key, "value": value, "ttl": _ms(ttl)}, ensure_ascii=False))
            out.write("\n")
            count += 1
            progress.tick()
    if args.output != "-":
        emit(args, {"exported": count}, f"exported {count} memories to {args.output}")
    return False


async def import_(memory: MemoryPrimitive, args: argparse.Namespace) -> bool:
    count = 0
    with open_input(args.input) as lines, Progress("imported") as progress:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                await memory.add(row["key"], row["value"], row.get("ttl"))
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"line {number}: {exc}") from None
            count += 1
            progress.tick()
    emit(args, {"imported": count}, f"imported {count} memories")
    return True


ACTIONS = {"stats": stats, "get": get, "search": search, "delete": delete, "clear": clear,
           "export": export, "import": import_}  # fmt: skip


class Progress:
    """A one-line counter on stderr for long runs (only when stderr is a terminal)."""

    def __init__(self, verb: str) -> None:
        self.verb, self.count = verb, 0
        self.live = sys.stderr.isatty()

    def tick(self) -> None:
        self.count += 1
        if self.live and self.count % 1000 == 0:
            print(f"\r{self.verb} {self.count:,}...", end="", file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.count >= 1000:
            print(f"\r{self.verb} {self.count:,}   ", file=sys.stderr)


class open_output:
    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: TextIO | None = None

    def __enter__(self) -> TextIO:
        self.handle = sys.stdout if self.path == "-" else open(self.path, "w")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None and self.handle is not sys.stdout:
            self.handle.close()


class open_input:
    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: TextIO | None = None

    def __enter__(self) -> Iterator[str]:
        self.handle = sys.stdin if self.path == "-" else open(self.path)
        return iter(self.handle)

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None and self.handle is not sys.stdin:
            self.handle.close()


def _ms(ttl: float | None) -> float | None:
    """Seconds left, to the millisecond (what Redis keeps)."""
    return None if ttl is None else round(ttl, 3)


def confirm_clear(namespace: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("clear asks for confirmation: run it in a terminal or add --yes", 2)
    answer = input(f"Remove every memory in namespace {namespace!r}? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        raise CommandError("not cleared", 1)


def read_store(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL store (a missing file is an empty store)."""
    if not path.exists():
        return []
    rows = []
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "key" not in row or "value" not in row:
                    raise ValueError('expected {"key": ..., "value": {...}, "ttl": ...}')
            except ValueError as exc:
                raise CommandError(f"{path}: line {number}: {exc}") from None
            rows.append(row)
    return rows


def write_store(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the store back atomically (a temporary file, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
