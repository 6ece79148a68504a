"""``tta-primitives memory ...``: look into and manage a memory without writing code.

Works on a namespace in Redis (``--redis-url``) or on a JSONL file used as an in-process store
(``--file``). The options ``--redis-url``, ``--file``, ``--namespace`` and ``--json`` go before
or after the action. Results go to stdout; errors are one line on stderr with a non-zero
status, never a traceback or a password. Export/import lines are
``{"key": ..., "value": {...}, "ttl": seconds left or null}``; their totals and rates go to
stderr. A row whose ttl is 0 or less has expired: export never writes one, import skips it,
and both say how many they skipped. Import checks every line before it stores anything: a bad
line stores nothing and names its number. When a key appears more than once, its last line wins.
Export to a path writes a temporary file beside it and renames it when complete, so a failure
part-way leaves the previous file intact; an import into a ``--file`` store streams the store
through (it never loads it into a searchable memory).

The ``--file`` store keeps each memory's expiry as a deadline (``"expires"``, Unix seconds), so
TTLs count down between runs; rows written by older versions (``"ttl"``) are still read.

Exit status: 0 success; 1 operational error (Redis unreachable or refusing, no such key, no such
file, bad input data); 2 usage error (unknown option, no store given, an unconfirmed ``clear``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tta_dev_primitives._checks import check_key, check_new_key, check_scope, check_ttl
from tta_dev_primitives.exceptions import TTAError
from tta_dev_primitives.memory._primitive import MemoryPrimitive
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._scopes import in_scope

if TYPE_CHECKING:
    from tta_dev_primitives.stores._redis.query_engine import SearchEngine

DEFAULT_NAMESPACE = "tta:memory"
GLOBAL_OPTIONS = ("redis_url", "file", "namespace", "json", "text_fields", "search_engine")
SEARCH_ENGINES = ("auto", "redis", "replica")  # (query_engine.ENGINES, not imported at start)


class CommandError(Exception):
    """A problem to report in one line, with this exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options every action takes, before or after it.

    Their default is ``SUPPRESS`` at both levels, so an option given at one level is never
    overwritten by the other level's default; ``resolve_globals`` fills the defaults in.
    """
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--redis-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the Redis holding the memory (default: $TTA_REDIS_URL, if set)",
    )
    where.add_argument(
        "--file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="a JSONL file used as an in-process store; only import creates it (default: none)",
    )
    parser.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help=f"the memory namespace (default: {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output on stdout (default: text)",
    )
    parser.add_argument(
        "--text-fields",
        default=argparse.SUPPRESS,
        metavar="FIELDS",
        help="the fields your application's memory searches, comma-separated, as its "
        "text_fields: an import indexes those only, and search reads them (default: every "
        "string but metadata)",
    )
    parser.add_argument(
        "--search-engine",
        choices=SEARCH_ENGINES,
        default=argparse.SUPPRESS,
        help="your application's search_engine (default: 'auto' if the namespace has a Query "
        "Engine index already, else 'replica': a command never makes one)",
    )


def add_parser(sub: Any) -> None:
    from tta_dev_primitives.cli import EXIT_STATUSES, HelpFormatter

    parser = sub.add_parser(
        "memory",
        help="inspect and manage a memory (Redis or a JSONL file)",
        description="Inspect and manage a memory in Redis or in a JSONL file.\n"
        "The options below may also come after the action.",
        epilog=EXIT_STATUSES,
        formatter_class=HelpFormatter,
    )
    add_global_options(parser)
    parser.set_defaults(run=run, _parser=parser)
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=EXIT_STATUSES,
            formatter_class=HelpFormatter,
        )
        add_global_options(command)
        command.set_defaults(_parser=command)
        return command

    action("stats", "count, backend, namespace and bytes of values")
    get = action("get", "print one memory (status 1 if there is none)")
    get.add_argument("key", help="the memory's key, e.g. u1:s1:ab12cd34")
    search = action("search", "ranked word search, best first: key and value per line")
    search.add_argument("query", help="words to find; an empty string gives the newest")
    search.add_argument(
        "--scope", help="only keys in this scope, e.g. u1:s1 (default: the whole namespace)"
    )
    search.add_argument(
        "--limit", type=int, default=5, help="at most this many results (default: %(default)s)"
    )
    listing = action("list", "one page of memories, newest write first: key and value per line")
    listing.add_argument(
        "--scope", help="only keys in this scope, e.g. u1 or u1:s1 (default: every memory)"
    )
    listing.add_argument(
        "--limit", type=int, default=20, help="at most this many per page (default: %(default)s)"
    )
    listing.add_argument(
        "--cursor", help="go on from this cursor, printed after the previous page (default: start)"
    )
    delete = action("delete", "remove one memory (status 1 if there is none)")
    delete.add_argument("key", help="the memory's key")
    clear = action("clear", "remove every memory of the namespace, or of one scope")
    clear.add_argument(
        "--scope", help="only this user's or session's memories, e.g. u1 (default: all)"
    )
    clear.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (default: ask)"
    )
    export = action("export", "write every memory as JSONL")
    export.add_argument(
        "output", nargs="?", default="-", help="a path, or - for stdout (default: %(default)s)"
    )
    export.add_argument("--scope", help="only keys in this scope, e.g. u1 (default: every memory)")
    load = action("import", "add memories from JSONL")
    load.add_argument("input", help="a path, or - for stdin")


def resolve_globals(args: argparse.Namespace) -> None:
    """Fill in the global options' defaults (see ``add_global_options``)."""
    if "redis_url" in args and "file" in args:
        raise CommandError("give --redis-url or --file, not both", 2)
    if "file" not in args:
        args.file = None
    if "redis_url" not in args:
        args.redis_url = None if args.file is not None else os.environ.get("TTA_REDIS_URL")
    if "namespace" not in args:
        args.namespace = DEFAULT_NAMESPACE
    if "json" not in args:
        args.json = False
    if "search_engine" not in args:
        args.search_engine = None  # the namespace's own: see ``open_redis``
    if "text_fields" not in args or args.text_fields is None:
        args.text_fields = None
    else:
        fields = tuple(f.strip() for f in args.text_fields.split(","))
        if not all(fields):
            raise CommandError(f"--text-fields {args.text_fields!r} names an empty field", 2)
        args.text_fields = fields


def run(args: argparse.Namespace) -> int:
    """Blocking work (prompts, the JSONL store's file) happens here, outside the event loop."""
    # The library's fallback warning would repeat what this command reports in its own line.
    logging.getLogger("tta_dev_primitives").addHandler(logging.NullHandler())
    try:
        resolve_globals(args)
        if not args.redis_url and args.file is None:
            raise CommandError("say where the memory is: --redis-url URL or --file PATH", 2)
        if args.action == "clear" and not args.yes:
            confirm_clear(args.namespace, args.scope)
        if args.action == "import":
            args.rows = read_import(args.input)  # all of it checked before anything is stored
            if args.file is not None:
                import_into_file(args)  # streams the store: no searchable copy of it all
                return 0
        rows = read_store(args.file) if args.file else []
        saved = asyncio.run(dispatch(args, rows))
        if saved is not None and args.file is not None:
            write_store(args.file, saved)
        return 0
    except CommandError as exc:
        print(f"tta-primitives memory: {exc}", file=sys.stderr)
        return exc.status
    except (TTAError, ValueError, TypeError, OSError, RecursionError) as exc:
        print(f"tta-primitives memory: {_one_line(exc)}", file=sys.stderr)
        return 1


def _quoted(text: str) -> str:
    """``text`` as one shell word."""
    import shlex

    return shlex.quote(text)


def _one_line(exc: BaseException) -> str:
    """An error as one line (a RecursionError's own message says nothing about the input)."""
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read"
    return " ".join(str(exc).split())


def check_reachable(memory: MemoryPrimitive) -> None:
    """An operator asked about Redis: a fallback to the in-process stand-in is an error."""
    info = memory.get_backend_info()
    if info["degraded"]:
        raise CommandError(str(info["last_error"]))


async def dispatch(
    args: argparse.Namespace, rows: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """Run the action; for a file store that changed, return its rows to write back.

    Output is printed only once the action is done and Redis was reachable throughout, so a
    failure never leaves half an answer (or a "(no match)") on stdout. Export streams, so it
    checks Redis first as well.
    """
    if args.file is not None:
        memory = MemoryPrimitive(
            max_size=10_000_000, namespace=args.namespace, text_fields=args.text_fields
        )
        for row in rows:
            await memory.add(row["key"], row["value"], row.get("ttl"))
    else:
        memory = await open_redis(args)
    try:
        try:
            output = await ACTIONS[args.action](memory, args)
        finally:
            check_reachable(memory)
        output.show(args)
        saved = None
        if output.changed and args.file is not None:
            now = time.time()
            saved = [{"key": k, "value": v, "expires": None if t is None else round(now + t, 3)}
                     async for k, v, t in memory.items()]  # fmt: skip
    finally:
        await memory.aclose()
    return saved


async def open_redis(args: argparse.Namespace) -> MemoryPrimitive:
    """The memory on Redis, connected. Without ``--search-engine``, the namespace decides: an
    ``"auto"`` process makes a Query Engine index on its first search or write, and backfills
    it, so a command run on a namespace searched by replicas would convert it (every write of
    the application then also writes an engine document). It uses the index only where one
    exists already."""
    engine: SearchEngine = args.search_engine or "replica"
    memory = _on_redis(args, engine)
    try:
        await memory.size()  # connects
        check_reachable(memory)
        if args.search_engine is None and await _has_engine_index(memory):
            await memory.aclose()
            memory = _on_redis(args, "auto")
            await memory.size()
            check_reachable(memory)
    except BaseException:
        await memory.aclose()
        raise
    return memory


def _on_redis(args: argparse.Namespace, engine: SearchEngine) -> MemoryPrimitive:
    return MemoryPrimitive(args.redis_url, namespace=args.namespace, redis_timeout=2.0,
                           max_size=1, text_fields=args.text_fields,
                           search_engine=engine)  # fmt: skip


async def _has_engine_index(memory: MemoryPrimitive) -> bool:
    """True if the namespace has a Query Engine index: its partitions' facts say so, as the
    engine's own set-up reads them (``query_engine``)."""
    from tta_dev_primitives.stores._redis.backend import RedisBackend
    from tta_dev_primitives.stores._redis.layout import FACT_ENGINE
    from tta_dev_primitives.stores._redis.shards import facts

    remote = memory._store.remote  # (the command is part of the package)
    assert isinstance(remote, RedisBackend)
    bases = remote.layout.bases
    flags = await remote.connection.call(lambda client: facts(client, bases, FACT_ENGINE))
    return any(flag == "1" for flag in flags)


class Output:
    """What an action prints (after it has succeeded) and whether it changed the store."""

    def __init__(
        self, data: Any = None, text: str | None = None, *, note: str | None = None,
        changed: bool = False,
    ) -> None:  # fmt: skip
        self.data, self.text, self.note, self.changed = data, text, note, changed

    def show(self, args: argparse.Namespace) -> None:
        if args.json and (self.text is not None or self.data is not None):
            print(json.dumps(self.data, ensure_ascii=False))
        elif not args.json and self.text is not None:
            print(self.text)
        if self.note is not None:
            print(self.note, file=sys.stderr)


async def stats(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    count, size = 0, 0
    async for _, value, _ in memory.items():
        count += 1
        size += len(json.dumps(value, ensure_ascii=False).encode())
    info = memory.get_backend_info()
    data = {"count": count, "backend": "redis" if args.redis_url else "file",
            "namespace": info["namespace"], "value_bytes": size,
            "url": info["url"], "file": str(args.file) if args.file else None}  # fmt: skip
    where = info["url"] or args.file
    return Output(data, f"{count:,} memories, {size:,} bytes of values, namespace "
                        f"{info['namespace']!r} ({data['backend']}: {where})")  # fmt: skip


async def get(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    value = await memory.get(args.key)
    if value is None:
        raise CommandError(f"no memory under {args.key!r}")
    return Output(value, json.dumps(value, ensure_ascii=False, indent=2))


async def search(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    found = await memory.search_items(args.query, args.limit, scope=args.scope)
    rows = [{"key": key, "value": value} for key, value in found]
    text = "\n".join(f"{key}  {json.dumps(value, ensure_ascii=False)}" for key, value in found)
    return Output(rows, text or "(no match)")


async def delete(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    if not await memory.delete(args.key):
        raise CommandError(f"no memory under {args.key!r}")  # the same status as get's
    return Output({"deleted": True}, "deleted", changed=True)


async def clear(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    if args.scope is not None:
        removed = await memory.forget(args.scope)
        text = f"forgot {removed:,} memories in scope {args.scope!r}"
        return Output({"forgotten": removed, "scope": args.scope}, text, changed=True)
    await memory.clear()
    return Output({"cleared": True}, "cleared", changed=True)


async def list_(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    page = await memory.list_memories(args.scope, limit=args.limit, cursor=args.cursor)
    rows = [{"key": key, "value": value} for key, value in page.items]
    text = "\n".join(f"{key}  {json.dumps(value, ensure_ascii=False)}" for key, value in page.items)
    note = None if page.cursor is None else f"more: --cursor {_quoted(page.cursor)}"
    data = {"items": rows, "cursor": page.cursor}
    return Output(data, text or "(none)", note=None if args.json else note)


async def export(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    expired = 0
    scope = check_scope(args.scope)  # as list --scope takes it, before any file is made
    with open_output(args.output) as out, Progress("exported") as progress:
        async for key, value, ttl in memory.items():
            if not in_scope(key, scope):
                continue
            left = _ms(ttl)
            if left is not None and left <= 0:
                expired += 1  # it expired while being read: a ttl of 0 would not import
                continue
            out.write(json.dumps({"key": key, "value": value, "ttl": left}, ensure_ascii=False))
            out.write("\n")
            progress.tick()
    where = "" if args.output == "-" else f" to {args.output}"
    data = {"exported": progress.count, "expired_skipped": expired, "seconds": progress.seconds()}
    note = progress.summary(where) + (f"; skipped {expired:,} that expired" if expired else "")
    # To stdout, the memories are the data: the total goes to stderr only.
    return Output(None if args.output == "-" else data, None, note=note)


async def import_(memory: MemoryPrimitive, args: argparse.Namespace) -> Output:
    checked: ImportRows = args.rows
    total = len(checked.rows)
    with Progress("imported") as progress:
        for key, (value, ttl) in checked.rows.items():
            await memory.add(key, value, ttl)
            if args.redis_url and not memory.using_redis:
                info = memory.get_backend_info()
                raise CommandError(f"imported {progress.count:,} of {total:,} memories, then "
                                   f"Redis stopped answering ({info['last_error']}); the rest "
                                   "were not imported")  # fmt: skip
            progress.tick()
    return imported(checked, progress, args)


def imported(checked: ImportRows, progress: Progress, args: argparse.Namespace) -> Output:
    """What an import prints: the total and rate, repeated keys and expired rows skipped."""
    data = {"imported": progress.count, "lines": checked.lines,
            "duplicates": checked.duplicates, "expired_skipped": checked.expired,
            "seconds": progress.seconds()}  # fmt: skip
    notes = [progress.summary("")]
    if checked.duplicates:
        notes.append(
            f"{checked.duplicates:,} lines repeated an earlier key (the last line of each key wins)"
        )
    if checked.expired:
        notes.append(f"skipped {checked.expired:,} expired (ttl 0 or less)")
    return Output(data if args.json else None, None, note="; ".join(notes), changed=True)


def import_into_file(args: argparse.Namespace) -> None:
    """Import into a ``--file`` store by streaming it into a new file, then renaming that.

    The store's rows pass through one at a time (those the import replaces are left out), then
    the imported rows follow: memory use is the import's, whatever the store's size.
    """
    checked: ImportRows = args.rows
    path: Path = args.file
    now = time.time()
    with Progress("imported") as progress:
        with replacing(path) as out:
            if path.exists():
                for row in store_rows(path):
                    if row["key"] not in checked.rows:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
            for key, (value, ttl) in checked.rows.items():
                expires = None if ttl is None else round(now + ttl, 3)
                row = {"key": key, "value": value, "expires": expires}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                progress.tick()
        imported(checked, progress, args).show(args)


class ImportRows:
    """An import's input, checked: distinct keys (the last line of each wins), in order."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[dict[str, Any], float | None]] = {}
        self.lines = 0
        self.duplicates = 0
        self.expired = 0


def read_import(path: str) -> ImportRows:
    """Read and check every line; the first bad one is an error and nothing is stored."""
    checked = ImportRows()
    seen_expired: set[str] = set()
    with open_input(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                key, value, ttl = _row(json.loads(line))
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                raise CommandError(
                    f"line {number}: {_one_line(exc)}; nothing was imported"
                ) from None
            checked.lines += 1
            if key in checked.rows or key in seen_expired:
                checked.duplicates += 1
                checked.rows.pop(key, None)  # the last line wins, in its own place in the order
            if ttl is not None and ttl <= 0:
                checked.expired += 1  # expired: skipped (and so is any earlier line of its key)
                seen_expired.add(key)
                continue
            seen_expired.discard(key)
            checked.rows[key] = (value, ttl)
    return checked


def _row(row: Any, *, new: bool = True) -> tuple[str, dict[str, Any], float | None]:
    """``(key, value, ttl)`` of an export line; a ttl of 0 or less comes back as 0 (expired).

    ``new=False`` reads a store's own row, whose key may predate the key length limit.
    """
    if not isinstance(row, dict) or "key" not in row or "value" not in row:
        raise ValueError('expected {"key": ..., "value": {...}, "ttl": ...}')
    key = check_new_key(row["key"]) if new else check_key(row["key"])
    encode_value(row["value"])
    ttl = row.get("ttl")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl <= 0:
        return key, row["value"], 0.0
    return key, row["value"], check_ttl(ttl)


ACTIONS = {"stats": stats, "get": get, "search": search, "list": list_, "delete": delete,
           "clear": clear, "export": export, "import": import_}  # fmt: skip


class Progress:
    """Counts rows; a live counter on stderr for long runs (only when stderr is a terminal)."""

    def __init__(self, verb: str) -> None:
        self.verb, self.count = verb, 0
        self.live = sys.stderr.isatty()
        self.started = time.perf_counter()

    def tick(self) -> None:
        self.count += 1
        if self.live and self.count % 1000 == 0:
            print(f"\r{self.verb} {self.count:,}...", end="", file=sys.stderr, flush=True)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def summary(self, where: str) -> str:
        """E.g. ``exported 1,234 memories to x.jsonl in 0.8 s (1,540/s)``."""
        seconds = time.perf_counter() - self.started
        rate = f"{self.count / seconds:,.0f}/s" if seconds > 0 else "-"
        noun = "memory" if self.count == 1 else "memories"
        return f"{self.verb} {self.count:,} {noun}{where} in {seconds:.2f} s ({rate})"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live and self.count >= 1000:
            print("\r", end="", file=sys.stderr)  # the summary line overwrites the counter


class open_output:
    """stdout for ``-``; else a file that appears, complete, only once the export succeeded."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: replacing | None = None
        self.handle: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.path == "-":
            return sys.stdout
        target = Path(self.path).resolve()  # a symlink's file is replaced, not the link
        if target.exists() and not target.is_file():  # /dev/stdout, a pipe: written directly
            self.handle = target.open("w", encoding="utf-8")
            return self.handle
        self.file = replacing(target)
        return self.file.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.__exit__(*exc)
        if self.handle is not None:
            self.handle.close()


class replacing:
    """A temporary file beside ``path`` that replaces it on success (a rename, so atomic).

    On any failure the temporary file is removed and ``path`` is left as it was: an export
    that fails part-way never costs the previous backup.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: TextIO | None = None
        self.tmp = ""

    def __enter__(self) -> TextIO:
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent or ".", prefix=f".{self.path.name}.")
        try:
            mode = self.path.stat().st_mode & 0o7777  # a backup keeps its permissions
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(self.tmp, mode)
        self.handle = os.fdopen(fd, "w", encoding="utf-8")
        return self.handle

    def __exit__(self, exc_type: type[BaseException] | None, *exc: Any) -> None:
        assert self.handle is not None
        try:
            if exc_type is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
        finally:
            self.handle.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
            else:
                os.unlink(self.tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def confirm_clear(namespace: str, scope: str | None) -> None:
    if not sys.stdin.isatty():
        raise CommandError("clear asks for confirmation: run it in a terminal or add --yes", 2)
    which = "every memory" if scope is None else f"every memory in scope {scope!r}"
    answer = input(f"Remove {which} in namespace {namespace!r}? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        raise CommandError("not cleared", 1)


def read_store(path: Path) -> list[dict[str, Any]]:
    """The live rows of a JSONL store as ``{"key", "value", "ttl"}`` (seconds left or None)."""
    if not path.exists():
        raise CommandError(f"no such file: {path} (import creates a store)")
    now = time.time()
    return [
        {"key": row["key"], "value": row["value"],
         "ttl": None if row["expires"] is None else row["expires"] - now}
        for row in store_rows(path, now)
    ]  # fmt: skip


def store_rows(path: Path, now: float | None = None) -> Iterator[dict[str, Any]]:
    """The live rows of a JSONL store, one at a time, as ``{"key", "value", "expires"}``."""
    now = time.time() if now is None else now
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                expires = row.get("expires") if isinstance(row, dict) else None
                if isinstance(row, dict) and "expires" in row:  # a deadline: time has passed
                    ttl = None if expires is None else float(expires) - now
                    row = {**row, "ttl": ttl}
                key, value, ttl = _row(row, new=False)
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                raise CommandError(f"{path}: line {number}: {_one_line(exc)}") from None
            if ttl is not None and ttl <= 0:
                continue  # expired (or a ttl of 0 written by an older version)
            if expires is None and ttl is not None:  # an older version's row: make a deadline
                expires = round(now + ttl, 3)
            yield {"key": key, "value": value, "expires": expires}


def write_store(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the store back atomically (a temporary file, then a rename)."""
    with replacing(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
