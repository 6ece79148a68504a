"""A LangGraph store backed by ``MemoryPrimitive``: long-term agent memory with Redis fallback.

Needs ``langgraph`` (in a checkout: ``pip install '.[langgraph]'``). Use it wherever
LangGraph takes a ``BaseStore`` (``graph.compile(store=...)``, ``create_react_agent(store=...)``).

Item ``("users", "u1"), "prefs"`` is the memory ``users:u1:prefs`` (``%`` and ``:`` in labels are
escaped as ``%25`` and ``%3A``), so ``memory.search(q, scope="users:u1")`` sees what the graph
stored, and the graph's ``search`` uses the memory's word index (BM25) for ``query``.

With LangGraph's ``index=`` config (``{"embed": ..., "dims": ..., "fields": [...]}``) the store
searches by meaning instead: as in LangGraph's own stores, each text at an item's ``fields``
paths gets a vector, the item scores by its best one, and ``search(query=...)`` ranks by cosine
similarity and sets ``SearchItem.score``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
)

from tta_dev_primitives._blocked import heavy_in_own_thread
from tta_dev_primitives._checks import as_float, is_huge_int, is_real, shown
from tta_dev_primitives.exceptions import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StaleWriteError,
)
from tta_dev_primitives.memory import MemoryPrimitive
from tta_dev_primitives.memory._prepared import is_small
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._facets import MAX_FACET_CHARS, Scalar

from ._portal import run_sync

__all__ = ["MemoryPrimitiveStore"]

log = logging.getLogger("tta_dev_primitives.langgraph")

_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")

#: The fields of the record the store writes for an item: a ``text_fields`` name may not be one.
_RECORD_FIELDS = frozenset(
    {"namespace", "key", "value", "created_at", "updated_at", "ttl", "index"}
)

#: ``from_url(None)``'s in-process capacity: unbounded, as LangGraph's ``InMemoryStore`` keeps
#: every item (a ``MemoryPrimitive``'s own default, 1,000, would drop the oldest items).
UNBOUNDED = sys.maxsize


def _escape(label: str) -> str:
    return label.replace("%", "%25").replace(":", "%3A")


def _check_namespace(namespace: tuple[str, ...], *, allow_empty: bool = False) -> None:
    """LangGraph's rules: non-empty ``str`` labels without ``.``; a put needs at least one."""
    if not isinstance(namespace, tuple):
        raise InvalidNamespaceError(f"namespace must be a tuple of str, got {namespace!r}")
    if not namespace and not allow_empty:
        raise InvalidNamespaceError("namespace must not be empty")
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label:
            raise InvalidNamespaceError(
                f"invalid namespace label {label!r} in {namespace}: labels are non-empty str "
                "without '.'"
            )


def _memory_key(namespace: tuple[str, ...], key: str) -> str:
    """The memory key of an item. An empty item key (LangGraph's stores take one) is ``%``,
    which no escaped key is."""
    if not isinstance(key, str):
        raise InvalidArgumentTypeError(f"item keys must be str, got {key!r}")
    return ":".join([*map(_escape, namespace), _escape(key) if key else "%"])


def _scope(prefix: tuple[str, ...]) -> str | None:
    return ":".join(_escape(label) for label in prefix) or None


def _check_index(index: Any) -> IndexConfig | None:
    """A copy of LangGraph's ``IndexConfig``, checked: ``embed``, positive ``dims``, ``fields``."""
    if index is None:
        return None
    if not isinstance(index, Mapping):
        raise InvalidArgumentTypeError(
            f"index must be a LangGraph IndexConfig dict or None, got {type(index).__name__}"
        )
    if index.get("embed") is None:
        raise InvalidArgumentError("index needs 'embed': an Embeddings, a function or 'p:model'")
    dims = index.get("dims")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise InvalidArgumentError(f"index['dims'] must be a positive int, got {dims!r}")
    fields = index.get("fields")
    if fields is not None:
        _check_paths(fields, "index['fields']")
    return cast(IndexConfig, dict(index))  # kept as given: LangGraph's tests read it back


def _check_paths(paths: Any, what: str) -> list[str]:
    if isinstance(paths, str) or not isinstance(paths, list | tuple):
        raise InvalidArgumentTypeError(f"{what} must be a list of str paths, got {paths!r}")
    if not all(isinstance(p, str) and p for p in paths):
        raise InvalidArgumentError(f"{what} must be non-empty str paths, got {paths!r}")
    return list(paths)


def _vector_texts(value: dict[str, Any], paths: Iterable[str]) -> list[str]:
    """The texts embedded for an item, one vector each: every text at ``paths``, in order.

    ``get_text_at_path`` is LangGraph's own reading of a path (``"$"`` is the whole value as
    sorted JSON; ``"a.b"``, ``"a[0]"``, ``"a[*].b"``); a path the value lacks adds nothing.
    The item scores by its best vector, as in LangGraph's own stores.
    """
    return [text for path in paths for text in get_text_at_path(value, path)]


def _check_memory_embeds(memory: MemoryPrimitive, index: IndexConfig) -> None:
    """The memory must embed, at ``index``'s dims, for the store to search by meaning.

    The memory's embedder embeds both the items and the queries, so ``index["embed"]`` is not
    called by the store; an embedder that has not learnt its dims yet is held to ``index``'s.
    """
    embedder = memory.embedder
    if embedder is None:
        raise InvalidArgumentError(
            "index= needs a memory that embeds: use MemoryPrimitiveStore.from_url(url, "
            "index=...) or MemoryPrimitive(url, embed=index['embed'], dims=index['dims'])"
        )
    if embedder.dims is not None and embedder.dims != index["dims"]:
        raise InvalidArgumentError(
            f"index['dims'] is {index['dims']} but the memory embeds with dims={embedder.dims}"
        )
    embedder.fix_dims(index["dims"])


def _text_fields(memory: MemoryPrimitive) -> tuple[str, ...]:
    """The memory's ``text_fields``, which the store copies to the top of each record.

    The memory searches a value's top-level fields by those names, and the store's record holds
    the item's value under ``"value"``; so each named field of the item is also kept at the
    record's top level, where the memory's search (and its embedder) reads it.
    """
    names = memory._indexing.text_fields or ()
    clash = sorted(set(names) & _RECORD_FIELDS)
    if clash:
        raise InvalidArgumentError(
            f"text_fields {clash} name fields of the store's own records "
            f"({', '.join(sorted(_RECORD_FIELDS))}); rename those value fields"
        )
    return names


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _is_record(value: Mapping[str, Any]) -> bool:
    """Whether a memory was written by this store (others may share the namespace)."""
    return (
        isinstance(value.get("value"), dict)
        and isinstance(value.get("namespace"), list)
        and isinstance(value.get("key"), str)
        and isinstance(value.get("created_at"), int | float)
        and isinstance(value.get("updated_at"), int | float)
    )


def _matches(value: Any, wanted: Any) -> bool:
    """JSON-style matching: nested dicts by key, lists element-wise, ``$op`` comparisons."""
    if isinstance(wanted, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in wanted):
            return all(_compare(value, op, operand) for op, operand in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(wanted)
            and all(_matches(v, w) for v, w in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _pushed(wanted: Mapping[str, Any] | None) -> dict[str, Scalar]:
    """The pairs of a LangGraph filter that the memory's index can apply, as its filter on the
    record (the item's value is its ``"value"``): a str, or a number other than 0 and 1, that
    every match must hold. ``None``, booleans, 0 and 1 stay here (LangGraph compares with
    ``==``: ``True == 1``, and a missing field equals ``None``), as do operators, nesting and
    strings longer than the index keeps for filters (``MAX_FACET_CHARS``: it refuses them) and
    ints too long for it (``is_huge_int``; ``math.isfinite`` raises OverflowError past a
    float's range, so an int is finite by its type)."""
    pushed: dict[str, Scalar] = {}
    for name, value in (wanted or {}).items():
        if isinstance(value, bool):
            number = False
        elif isinstance(value, int):
            number = not is_huge_int(value)
        else:
            number = isinstance(value, float) and math.isfinite(value)
        if isinstance(name, str) and (
            (isinstance(value, str) and len(value) <= MAX_FACET_CHARS)
            or (number and value not in (0, 1))
        ):
            pushed[f"value.{name}"] = value
    return pushed


def _compare(value: Any, operator: str, operand: Any) -> bool:
    if operator not in _OPERATORS:
        raise InvalidArgumentError(
            f"unsupported filter operator {operator!r}; use one of {_OPERATORS}"
        )
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, operand)):
        return False  # ordering only applies to numbers; a missing field never matches
    if operator == "$gt":
        return bool(value > operand)
    if operator == "$gte":
        return bool(value >= operand)
    if operator == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def _namespace_matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    if condition.match_type not in ("prefix", "suffix"):
        raise InvalidArgumentError(f"unsupported match type {condition.match_type!r}")
    return not path or all(p in ("*", n) for n, p in zip(part, path, strict=True))


class MemoryPrimitiveStore(BaseStore):
    """A LangGraph ``BaseStore`` whose items are memories of a ``MemoryPrimitive``.

    Every string in an item's value (and its namespace and key) is indexed for word search;
    with ``MemoryPrimitive(text_fields=...)``, only those fields of the value, as on the memory.
    An in-process memory holds at most its ``max_size`` items: the memory logs a warning the
    first time it evicts one (``from_url(None)`` builds an unbounded one).
    Without ``index``, ``query`` is word search (BM25) and ``index`` arguments to ``put`` are
    ignored, as in LangGraph's stores. With ``index`` (LangGraph's ``IndexConfig``), ``query``
    is semantic search: the memory must embed with ``index["embed"]`` at ``index["dims"]``, so
    build both at once with ``MemoryPrimitiveStore.from_url(url, index=...)``, or pass a memory
    made with ``MemoryPrimitive(url, embed=..., dims=...)``. TTLs are in minutes as in
    LangGraph; ``refresh_ttl`` restarts an item's clock (``memory.touch``). Ops in a batch run in
    order.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        memory: MemoryPrimitive,
        *,
        ttl: TTLConfig | None = None,
        index: IndexConfig | None = None,
    ) -> None:
        if not isinstance(memory, MemoryPrimitive):
            raise InvalidArgumentTypeError(
                f"memory must be a MemoryPrimitive, got {type(memory).__name__}"
            )
        self.memory = memory
        self.ttl_config = ttl
        self.index_config: IndexConfig | None = _check_index(index)
        self._paths: list[str] = list((self.index_config or {}).get("fields") or ["$"])
        if self.index_config is not None:
            _check_memory_embeds(memory, self.index_config)
        self._text_fields = _text_fields(memory)
        self._embeddings: Embeddings | None = None
        # Only an in-process memory drops items when full; Redis keeps them all.

    @property
    def embeddings(self) -> Embeddings | None:
        """``index["embed"]`` as LangChain ``Embeddings`` (as LangGraph's stores expose it), or
        None without ``index``; made on first use, since the memory does the embedding."""
        if self.index_config is None:
            return None
        if self._embeddings is None:
            from langgraph.store.base.embed import ensure_embeddings

            self._embeddings = ensure_embeddings(self.index_config["embed"])
        return self._embeddings

    @classmethod
    def from_url(
        cls,
        redis_url: str | None = None,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        **memory_options: Any,
    ) -> MemoryPrimitiveStore:
        """A store on a new ``MemoryPrimitive(redis_url, **memory_options)``.

        With ``index``, the memory embeds with ``index["embed"]`` at ``index["dims"]``, so the
        store's config and the memory's vectors cannot disagree. With no ``redis_url`` the
        memory keeps every item, as LangGraph's ``InMemoryStore`` does (``max_size`` defaults
        to ``UNBOUNDED``; pass ``max_size=`` to bound it). On Redis every item is kept in Redis
        and ``max_size`` bounds the in-process stand-by copy. Close it with
        ``await store.memory.aclose()``.
        """
        if redis_url is None or memory_options.get("enable_redis") is False:
            memory_options.setdefault("max_size", UNBOUNDED)
        checked = _check_index(index)
        if checked is not None:
            if {"embed", "dims"} & memory_options.keys():
                raise InvalidArgumentError(
                    "with index=, give the embedder as index['embed'] and index['dims'], not as "
                    "memory options"
                )
            memory_options = {**memory_options, "embed": checked["embed"], "dims": checked["dims"]}
        return cls(MemoryPrimitive(redis_url, **memory_options), ttl=ttl, index=checked)

    # -- batch entry points ------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order; results line up with them."""
        return [await self._run(op) for op in ops]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Sync ``abatch``; so also ``get``, ``put``, ``search``, ``delete``, ``list_namespaces``.

        Works inside a running event loop too, as LangGraph's ``InMemoryStore`` does: the ops run
        on a private loop in another thread while the calling loop waits. There, prefer awaiting
        ``abatch`` / ``aget`` / ``aput``: they block nothing.
        """
        return run_sync(self.abatch(list(ops)), instead="abatch() / aget() / aput()", in_loop=True)

    async def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return await self._get(op)
        if isinstance(op, PutOp):
            await self._put(op)
            return None
        if isinstance(op, SearchOp):
            return await self._search(op)
        if isinstance(op, ListNamespacesOp):
            return await self._list_namespaces(op)
        raise InvalidArgumentTypeError(f"unknown store operation {type(op).__name__}")

    # -- operations ----------------------------------------------------------------------------

    def _refresh(self, requested: bool | None) -> bool:
        if requested is not None:
            return requested
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    async def _touch(self, record: dict[str, Any]) -> None:
        """Restart a TTL'd item's clock (``memory.touch``: the value is left as it stands).

        Never by writing ``record`` again: it is what this read saw, and a put made since (by
        another process, or another task) would be replaced by it. While Redis is away the
        item keeps its deadline (``touch`` is not journalled), and the read still answers.
        """
        ttl = record.get("ttl")
        if isinstance(ttl, int | float) and ttl > 0:
            key = _memory_key(tuple(record["namespace"]), record["key"])
            # Redis away: its deadline is unchanged. Stale: a newer change of the item stands,
            # with its own TTL.
            with contextlib.suppress(BackendUnavailableError, StaleWriteError):
                await self.memory.touch(key, ttl * 60)

    def _embedded_text(self, record: dict[str, Any]) -> list[str] | None:
        """What ``memory.add`` embeds for ``record``: ``None`` leaves it to the memory.

        With an index, the text at the item's paths: ``record["index"]`` holds a put's own
        ``index=`` (paths as the keys of a dict, since the memory's word search never reads
        field names; ``False`` for no vector), else the store's ``fields`` apply.
        """
        if self.index_config is None:
            return None
        chosen = record.get("index")
        if chosen is False:
            return []
        paths = list(chosen) if isinstance(chosen, dict) else self._paths
        return _vector_texts(record["value"], paths)

    async def _get(self, op: GetOp) -> Item | None:
        _check_namespace(op.namespace)
        record = await self.memory.get(_memory_key(op.namespace, op.key))
        if record is None or not _is_record(record):
            return None
        if self._refresh(op.refresh_ttl):
            await self._touch(record)
        return Item(**self._fields(record))

    async def _put(self, op: PutOp) -> None:
        _check_namespace(op.namespace)
        key = _memory_key(op.namespace, op.key)
        if op.value is None:
            # A newer change of the item stands (another process's put or delete, landed
            # after ours was issued: StaleWriteError): ours came first and is overwritten,
            # which is what a later put does to it anyway. LangGraph's stores never raise here.
            with contextlib.suppress(StaleWriteError):
                await self.memory.delete(key)
            return
        if not isinstance(op.value, dict):
            raise InvalidArgumentTypeError(
                f"item values must be dict, got {type(op.value).__name__}"
            )
        # Names the bad part as the caller wrote it (value['tags'][2]); a large value is
        # checked on a worker thread, as ``add`` checks it: not seconds of Python on the loop.
        if is_small(op.value):
            encode_value(op.value)
        else:
            await heavy_in_own_thread(encode_value, op.value)
        ttl = op.ttl
        if ttl is not None:
            minutes = as_float(ttl) if is_real(ttl) else math.nan  # (10**400: inf, refused)
            if not (math.isfinite(minutes) and minutes > 0):
                raise InvalidArgumentError(
                    f"ttl must be a positive, finite number of minutes or None, got {shown(ttl)}"
                )
            if not isinstance(ttl, int | float):
                ttl = minutes  # a numpy number: stored as JSON
        chosen = op.index
        if chosen is not None and chosen is not False:
            chosen = _check_paths(chosen, "index")
        now = time.time()
        existing = await self.memory.get(key)
        created = existing["created_at"] if existing and _is_record(existing) else now
        record: dict[str, Any] = {
            "namespace": list(op.namespace),
            "key": op.key,
            "value": op.value,
            "created_at": created,
            "updated_at": now,
            "ttl": ttl,
        }
        if self.index_config is not None and chosen is not None:
            record["index"] = False if chosen is False else dict.fromkeys(chosen, True)
        for name in self._text_fields:
            if name in op.value:
                record[name] = op.value[name]
        with contextlib.suppress(StaleWriteError):  # a newer change stands (see above)
            await self.memory.add(
                key,
                record,
                ttl=None if ttl is None else ttl * 60,
                vector_text=self._embedded_text(record),
            )

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        # A list prefix (``search(["docs"])``) is read as the tuple it spells, as LangGraph's
        # Postgres and SQLite stores do.
        prefix = op.namespace_prefix
        if isinstance(prefix, list):
            prefix = tuple(prefix)
        _check_namespace(prefix, allow_empty=True)
        if op.limit < 0 or op.offset < 0:
            raise InvalidArgumentError("limit and offset must not be negative")
        wanted = op.offset + op.limit
        if wanted == 0:
            return []
        query, scope = (op.query or "").strip(), _scope(prefix)

        def keep(record: dict[str, Any]) -> bool:
            return _is_record(record) and all(
                _matches(record["value"].get(k), v) for k, v in (op.filter or {}).items()
            )

        # Equality on a field's value is applied by the memory's index (before its top-k); what
        # it cannot apply (operators, nested values) is checked here, on every record kept.
        pushed = _pushed(op.filter)
        page: list[tuple[dict[str, Any], float | None]]
        if self.index_config is not None and query:
            page = await self._semantic(query, scope, wanted, keep, pushed)
        else:
            exact = len(pushed) == len(op.filter or {})
            fetch = wanted if exact else 4 * wanted
            while True:
                found = await self.memory.search(
                    query, limit=fetch, scope=scope, mode="keyword", filter=pushed
                )
                page = [(r, None) for r in found if keep(r)]
                if len(page) >= wanted or len(found) < fetch:
                    break
                fetch *= 4
        page = page[op.offset : wanted]
        if self._refresh(op.refresh_ttl):
            for record, _ in page:
                await self._touch(record)
        return [SearchItem(**self._fields(record), score=score) for record, score in page]

    async def _semantic(
        self,
        query: str,
        scope: str | None,
        wanted: int,
        keep: Callable[[dict[str, Any]], bool],
        pushed: dict[str, Scalar],
    ) -> list[tuple[dict[str, Any], float | None]]:
        """The best ``wanted`` kept items by cosine similarity to ``query``, with their scores.

        As in LangGraph's ``InMemoryStore``, items stored with no vector (``index=False``, or
        none of the paths present) have no score and follow every scored item (newest first).
        """
        fetch = 2 * wanted
        while True:
            scored = await self.memory.search_scored(
                query, fetch, scope=scope, mode="semantic", filter=pushed
            )
            page: list[tuple[dict[str, Any], float | None]] = [
                (hit.value, hit.score) for hit in scored if keep(hit.value)
            ]
            if len(page) >= wanted or len(scored) < fetch:
                break
            fetch *= 4
        if len(page) >= wanted:
            return page
        # Every vector in scope was read: the rest of the page is items without one.
        have = {hit.key for hit in scored}
        fetch = len(scored) + wanted
        while True:
            listed = await self.memory.search_items(
                "", limit=fetch, scope=scope, mode="keyword", filter=pushed
            )
            rest = [value for key, value in listed if key not in have and keep(value)]
            if len(page) + len(rest) >= wanted or len(listed) < fetch:
                break
            fetch *= 4
        return page + [(r, None) for r in rest]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        for condition in conditions:
            _check_namespace(tuple(condition.path), allow_empty=True)
        seen: set[tuple[str, ...]] = set()
        async for namespace in self._namespaces():
            if all(_namespace_matches(namespace, c) for c in conditions):
                seen.add(namespace if op.max_depth is None else namespace[: op.max_depth])
        return sorted(seen)[op.offset : op.offset + op.limit]

    async def _namespaces(self) -> AsyncIterator[tuple[str, ...]]:
        """Every item's namespace (reads the whole memory namespace: O(memories))."""
        async for _, value, _ in self.memory.items():
            if _is_record(value):
                yield tuple(value["namespace"])

    @staticmethod
    def _fields(record: dict[str, Any]) -> dict[str, Any]:
        return {
            "namespace": tuple(record["namespace"]),
            "key": record["key"],
            "value": record["value"],
            "created_at": _datetime(record["created_at"]),
            "updated_at": _datetime(record["updated_at"]),
        }

    def __repr__(self) -> str:
        return f"MemoryPrimitiveStore(memory={self.memory!r})"
