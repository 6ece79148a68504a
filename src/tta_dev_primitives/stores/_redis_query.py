"""Search inside Redis, with its Query Engine (RediSearch, ``FT.*``), where the server has it.

Redis 8 ships the Query Engine, and Redis Stack and managed Redis offer it. With it, a search
costs the process no replica: each memory also gets a small search document (``f:<key>``, a
hash written by the same Lua script as the value; see ``_redis_lua``) that one ``FT.SEARCH``
index per namespace covers:

- ``t``: the memory's terms from *our* analyzer, each repeated as often as it occurs, in a
  TEXT field the engine neither stems nor stop-words again, so our stemming, stop words and
  fields decide the words. A term that is not plain ``[a-z0-9]`` is written as ``_`` and its
  UTF-8 in hex, so the engine's tokenizer never splits it (hex keeps prefixes, so an
  unfinished last word still matches as a prefix).
- ``s``: a TAG per scope the key belongs to (each ``:`` prefix, and the key itself), as a short
  hash: no escaping, any length. Results are checked against the scope, so a hash collision
  can cost a result, never leak one.
- ``q``: the write sequence, for newest-first ties and "most recent" listings.
- ``e``: the first vector (HNSW, cosine); a memory's further vectors are ``fv:<i>:<key>``
  documents with the same tags, and a memory scores by its best.

Keyword search is the engine's BM25 (``BM25STD``: k1 1.2 where ours is 1.5, the same idf and
length norm, statistics of the whole namespace), so rankings are close to in-process, not
identical (``benchmarks/bench_relevance.py`` measures both). Semantic search is the engine's
KNN with the scope as a pre-filter. Hybrid fuses the two candidate lists with the same
``_fusion`` as in-process. Ties go to the newest write in every mode, except equal keyword
scores among more than ``MAX_TIE_SORT`` matches, which keep the engine's order (sorting them
would cost a scan of every match).

The index is made once per namespace by the first process that wants it: it creates the
index, then sets ``n.ft`` in every partition (from then on every write keeps its document,
indexed as it is written), then backfills documents for memories written before, in bounded
pages, each idempotent, recording its progress in Redis (``n.ftcur``, ``n.ftok``) so that
another process resumes a backfill that stopped. The first embedder's size becomes the
index's vector field (``n.ftdims``; adding it backfills again, so older vectors are in it).
Until the index is whole, searches go to the replica, so no answer ever misses a memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal

from tta_dev_primitives.exceptions import BackendError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._fusion import CANDIDATE_DEPTH, fuse
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._scopes import normalize_scope, scope_prefixes
from tta_dev_primitives.search._topk import top_items

__all__ = [
    "ENGINES",
    "QueryEngine",
    "SearchEngine",
    "encode_term",
    "in_scope",
    "prefix_tokens",
    "scope_tag",
    "scope_tags",
    "terms_text",
]

log = logging.getLogger("tta_dev_primitives.memory")

SearchEngine = Literal["auto", "redis", "replica"]
ENGINES: Final = ("auto", "redis", "replica")

#: Query terms sent to the engine (a pasted page of text stays a bounded query).
MAX_QUERY_TOKENS: Final = 64
#: How often one term is repeated in ``t``: BM25 has long saturated by then.
MAX_TF: Final = 255
#: Extra hits read past ``limit`` so that equal scores can be ordered newest first here.
TIE_MARGIN: Final = 20
#: Matches past which ties are left in the engine's order (oldest first) rather than sorted
#: by sequence with FT.AGGREGATE, whose cost grows with the matches (~3 us each here).
MAX_TIE_SORT: Final = 20_000
#: HNSW candidate list per vector query (the engine's default, 10, found ~57% of the true top
#: 10 on 100k MiniLM vectors; 128 found ~95%: benchmarks/results/vectors.md).
EF_RUNTIME: Final = 200
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

Call = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


def encode_term(term: str) -> str:
    """A term as the engine's tokenizer keeps it whole: plain ``[a-z0-9]`` as is, else hex."""
    if term and _PLAIN.issuperset(term):
        return term
    return "_" + term.encode().hex()


def prefix_tokens(prefix: str) -> list[str]:
    """The engine's prefix queries that match every term starting with ``prefix``: a plain
    prefix may also begin an encoded term (``caf`` of ``café``)."""
    hexed = "_" + prefix.encode().hex() + "*"
    return [prefix + "*", hexed] if _PLAIN.issuperset(prefix) else [hexed]


def terms_text(terms: Mapping[str, int]) -> str:
    """The ``t`` field: each term, encoded, as often as it occurs (up to ``MAX_TF``)."""
    return " ".join(" ".join([encode_term(t)] * min(tf, MAX_TF)) for t, tf in terms.items())


def scope_tag(scope: str) -> str:
    """The TAG of one scope: 16 hex digits of its hash (no escaping, any length)."""
    return hashlib.blake2b(scope.encode(), digest_size=8).hexdigest()


def scope_tags(key: str) -> str:
    """The ``s`` field: the tags of every scope ``key`` belongs to, itself included."""
    return ",".join(scope_tag(s) for s in [*scope_prefixes(key), key])


def in_scope(key: str, scope: str | None) -> bool:
    """True if ``key`` belongs to ``scope`` (whole segments, or the key itself)."""
    return scope is None or key == scope or key.startswith(scope + ":")


class QueryEngine:
    """One namespace's index in the Redis Query Engine, and the searches run on it.

    ``call`` runs work under the backend's timeout; ``bases`` are the partitions' key prefixes.
    """

    def __init__(self, namespace: str, mode: SearchEngine, indexing: Indexing) -> None:
        self.mode: SearchEngine = mode
        self.name = f"{namespace}:idx"
        self.indexing = indexing
        #: unknown (not asked yet), absent (no engine, or not ours to use), building, ready
        self.state = "unknown"
        self.dims: int | None = None  # of the index's vector field, once it has one
        self._no_engine = False
        self._stale = False  # cleared here: check the index's facts again
        self._backfill: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def in_use(self) -> bool:
        """True when searches run in the engine (the index is whole)."""
        return self.state == "ready"

    def describe(self) -> str:
        """``search_engine`` for ``get_backend_info()``."""
        if self.in_use:
            return "redis"
        if self.state == "building":
            return "replica (building the Redis Query Engine index)"
        if self.state == "unknown" and self.mode != "replica":
            return "unknown (not connected yet)"
        return "replica"

    # -- setting up ----------------------------------------------------------------------------

    @property
    def writes_documents(self) -> bool:
        """False once it is known that no process can keep documents here (no engine)."""
        return not self._no_engine

    async def prepare(
        self,
        call: Call,
        bases: list[str],
        cluster: bool,
        backfill: Callable[[int | None], Awaitable[bool]],
        dims: int | None,
        *,
        searching: bool = False,
    ) -> None:
        """Learn (once) whether this namespace searches in the engine, making the index if it
        is not there, giving it a vector field of ``dims`` (this process's embedder's size) and,
        before a search, backfilling it; a process that chose ``"replica"`` only learns what the
        index holds. A write needs only the first two: while a backfill runs it costs nothing."""
        vectors_known = dims is None or bool(self.dims)
        if not self._stale and (
            self.state == "absent"
            or (self.state == "ready" and vectors_known)
            or (self.state == "building" and vectors_known and not searching)
            or (self.state == "building" and vectors_known and self._backfilling)
        ):
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.state == "unknown" or self._stale:
                self._stale = False
                await self._discover(call, bases, cluster, dims)
            if self.state in ("building", "ready") and dims is not None and self.dims is None:
                await self._add_vectors(call, bases, dims)
            if self.state == "building" and searching:
                await self._check_ready(call, bases, backfill, dims)

    @property
    def _backfilling(self) -> bool:
        return self._backfill is not None and not self._backfill.done()

    async def _discover(
        self, call: Call, bases: list[str], cluster: bool, dims: int | None
    ) -> None:
        if cluster:
            # Each shard would hold its own index and statistics: not supported yet.
            if self.mode == "redis":
                raise BackendError(
                    "search_engine='redis' is not supported on a Redis Cluster yet: use "
                    "search_engine='auto' or 'replica'"
                )
            self._no_engine, self.state = True, "absent"
            return
        info = await call(self._info)
        if info is None:  # no Query Engine, or we may not use it
            if self.mode == "redis":
                raise BackendError(
                    "search_engine='redis' needs the Redis Query Engine (FT.* commands: Redis "
                    "8, Redis Stack or a managed Redis with search), which this server does "
                    "not offer; use search_engine='auto' to search with a replica instead"
                )
            self._no_engine, self.state = True, "absent"
            return
        if self.mode == "replica":
            self.dims, self.state = info.get("dims"), "absent"
            return
        if not info.get("exists"):
            refused: BackendError | None = None
            try:
                await call(lambda c: c.execute_command(*self._create_args(bases, dims)))
            except BackendError as exc:  # another process made it first, or we may not
                refused = exc
            info = await call(self._info) or {}
            if not info.get("exists"):  # we may not create it (ACL): search with a replica
                if self.mode == "redis":
                    raise BackendError(
                        f"search_engine='redis': the Query Engine index {self.name!r} does not "
                        f"exist and could not be created ({refused})"
                    )
                self.state = "absent"
                return
        # Only now (the index exists, so every document is indexed as it is written) do writes
        # start keeping documents; again after an unversioned clear dropped the flag.
        self.dims = info.get("dims")
        await call(lambda c: _mark(c, bases, "ft", "1"))
        if self.dims:
            await call(lambda c: _mark(c, bases, "ftdims", str(self.dims)))
        self.state = "building"

    def _create_args(self, bases: list[str], dims: int | None) -> list[Any]:
        prefixes = [base + kind for base in bases for kind in ("f:", "fv:")]
        return [
            "FT.CREATE", self.name, "ON", "HASH", "PREFIX", len(prefixes), *prefixes,
            "STOPWORDS", 0, "SCHEMA",
            "t", "TEXT", "NOSTEM",
            "s", "TAG",
            "q", "NUMERIC", "SORTABLE",
            *([] if not dims else _vector_field(dims)),
        ]  # fmt: skip

    async def _info(self, client: Any) -> dict[str, Any] | None:
        """``{"exists": bool, "dims": int | None}``; None without an engine (or not for us)."""
        from redis import exceptions as rexc

        try:
            reply = await client.execute_command("FT.INFO", self.name)
        except rexc.ResponseError as exc:
            text = str(exc).lower()
            if "unknown index" in text or "no such index" in text:
                return {"exists": False, "dims": None}
            if "unknown command" in text or "noperm" in text or "permission" in text:
                return None
            raise
        fields = _as_dict(reply)
        dims = None
        for attribute in fields.get("attributes", []):
            attr = _as_dict(attribute)
            if _text(attr.get("identifier", "")) == "e":
                dims = int(attr.get("dim", attr.get("DIM", 0)) or 0) or None
        return {"exists": True, "dims": dims}

    async def _check_ready(
        self,
        call: Call,
        bases: list[str],
        backfill: Callable[[int | None], Awaitable[bool]],
        dims: int | None,
    ) -> None:
        """Ready once every partition is backfilled (documents are indexed as they are written:
        none was written before the index existed).

        The first page of each partition is backfilled at once (a new or small namespace is
        ready straight away); a larger one goes on in the background. A process that does not
        know its vectors' size leaves a namespace with vectors to one that does.
        """
        flags = await call(lambda c: _facts(c, bases, "ftok"))
        if not all(flag == "1" for flag in flags):
            task = self._backfill
            if task is not None and not task.done():
                return
            if dims is None and self.dims is None and await call(lambda c: _has_vectors(c, bases)):
                return
            if not await backfill(1):
                self._backfill = asyncio.get_running_loop().create_task(self._finish(backfill))
                return
        self.state = "ready"

    async def _finish(self, backfill: Callable[[int | None], Awaitable[bool]]) -> None:
        try:
            await backfill(None)
        except BackendError as exc:  # Redis went away: the next search resumes it
            log.warning("backfilling the Redis Query Engine index stopped: %s", exc)

    async def wait_backfill(self) -> None:
        """Await a backfill under way (tests; a migration script)."""
        if self._backfill is not None:
            await asyncio.shield(self._backfill)

    async def _add_vectors(self, call: Call, bases: list[str], dims: int) -> None:
        """Give the index a vector field of ``dims`` (once; the first embedder's size wins).

        The process that adds it backfills again, so memories written before, vectors and all,
        are in the field before searches by meaning use it.
        """
        try:
            await call(lambda c: c.execute_command("FT.ALTER", self.name, "SCHEMA", "ADD",
                                                   *_vector_field(dims)))  # fmt: skip
            added = True
        except BackendError:  # another process added it first
            added = False
        info = await call(self._info) or {}
        self.dims = info.get("dims")
        if self.dims != dims:
            log.warning(
                "the Redis Query Engine index %r holds %s-dim vectors and this embedder makes "
                "%d: searches by meaning use a replica (search_engine='replica' semantics)",
                self.name, self.dims, dims,
            )  # fmt: skip
            return
        await call(lambda c: _mark(c, bases, "ftdims", str(dims)))
        if added:
            await call(lambda c: _unmark(c, bases, "ftok", "ftcur"))
            self.state = "building"

    def cleared(self) -> None:
        """The namespace was cleared here: check the index's facts again before the next
        operation (an unversioned clear drops ``n.ft`` with the rest)."""
        if self.state in ("building", "ready"):
            self._stale = True

    async def aclose(self) -> None:
        task, self._backfill = self._backfill, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- searching -----------------------------------------------------------------------------

    async def search(
        self, call: Call, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, float, int]] | None:
        """``(key, score, sequence)`` best first, ties newest first; None if the engine
        cannot answer this query (vectors of another size): the caller uses the replica."""
        scope = None if scope is None else normalize_scope(scope)
        mode, weight = query.mode, query.weight
        if mode == "hybrid" and weight == 0.0:
            mode = "keyword"
        elif mode == "hybrid" and weight == 1.0:
            mode = "semantic"
        if mode != "keyword" and (self.dims is None or len(query.vector) != self.dims):
            return None  # the index holds no vectors of this size: the replica's do
        if mode == "keyword":
            if query.blank:
                recent: list[tuple[str, float, int]] = await call(
                    lambda c: self._recent(c, limit, scope)
                )
                return recent
            return top_items(await self._keyword_only(call, query, limit, scope), limit)
        if mode == "semantic":
            return top_items(await call(lambda c: self._semantic(c, query, limit, scope)), limit)
        depth = max(limit, CANDIDATE_DEPTH)
        keyword = [] if query.blank else await self._keyword_only(call, query, depth, scope)
        semantic = await call(lambda c: self._semantic(c, query, depth, scope))
        seqs = {key: seq for key, _, seq in keyword}
        seqs.update((key, seq) for key, _, seq in semantic)
        fused = fuse(
            [(k, s) for k, s, _ in keyword], [(k, s) for k, s, _ in semantic],
            query.weight, query.fusion,
        )  # fmt: skip
        return top_items(((key, score, seqs[key]) for key, score in fused.items()), limit)

    async def _keyword_only(
        self, call: Call, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        if not query.terms:
            return []
        found: list[tuple[str, float, int]] = await call(
            lambda c: self._keyword(c, query, limit, scope)
        )
        return found

    async def _keyword(
        self, client: Any, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        terms = query.terms[:MAX_QUERY_TOKENS]
        tokens = [encode_term(t) for t in terms]
        if query.prefix_last and len(terms) == len(query.terms):
            tokens[-1:] = prefix_tokens(terms[-1])
        text = "@t:(" + "|".join(tokens) + ")" + _scope_filter(scope, " ")
        window = limit + TIE_MARGIN
        reply = await client.execute_command(
            "FT.SEARCH", self.name, text, "SCORER", "BM25STD", "WITHSCORES", "RETURN", 1, "q",
            "LIMIT", 0, window, "DIALECT", 2,
        )  # fmt: skip
        rows = _rows(reply, scores=True)
        ties = len(rows) == window and rows[limit - 1][1] == rows[-1][1]
        if ties and _total(reply) <= MAX_TIE_SORT:
            # Equal scores run past the window: the engine orders them oldest first, so ask
            # it to sort by score, then sequence (slower: only when ties need it, and only
            # over a bounded number of matches).
            reply = await client.execute_command(
                "FT.AGGREGATE", self.name, text, "ADDSCORES", "SCORER", "BM25STD",
                "LOAD", 2, "@__key", "@q", "SORTBY", 4, "@__score", "DESC", "@q", "DESC",
                "MAX", window, "DIALECT", 2,
            )  # fmt: skip
            rows = _aggregate_rows(reply)
        return [
            (key, score, seq)
            for key, score, fields in rows
            if (seq := _seq(fields)) is not None and in_scope(key, scope)
        ]

    async def _semantic(
        self, client: Any, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        from tta_dev_primitives.embeddings._vectors import encode_vector

        k = limit + TIE_MARGIN
        ef = max(EF_RUNTIME, k)
        where = _scope_filter(scope, "") or "*"
        text = f"({where})=>[KNN {k} @e $v EF_RUNTIME {ef} AS d]"
        reply = await client.execute_command(
            "FT.SEARCH", self.name, text, "PARAMS", 2, "v", encode_vector(query.vector),
            "SORTBY", "d", "RETURN", 2, "d", "q", "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        best: dict[str, tuple[float, int]] = {}
        for key, _, fields in _rows(reply, scores=False):
            seq = _seq(fields)
            distance = fields.get("d")
            if seq is None or distance is None or not in_scope(key, scope):
                continue
            sim = 1.0 - float(distance)
            if key not in best or sim > best[key][0]:
                best[key] = (sim, seq)
        return [(key, sim, seq) for key, (sim, seq) in best.items()]

    async def _recent(
        self, client: Any, limit: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        text = _scope_filter(scope, "") or "*"
        reply = await client.execute_command(
            "FT.SEARCH", self.name, text, "SORTBY", "q", "DESC", "RETURN", 1, "q",
            "LIMIT", 0, limit + TIE_MARGIN, "DIALECT", 2,
        )  # fmt: skip
        found = [
            (key, 0.0, seq)
            for key, _, fields in _rows(reply, scores=False)
            if (seq := _seq(fields)) is not None and in_scope(key, scope)
        ]
        return top_items(found, limit)

    # -- the backfill --------------------------------------------------------------------------

    def page_args(self, base: str, records: Iterable[tuple[str, int, Any, Any, Any]],
                  dims: int | None) -> list[Any]:  # fmt: skip
        """INDEX_PAGE's arguments for a page of CHANGES records (key, seq, payload, _, vector)."""
        args: list[Any] = [base]
        for key, seq, payload, _, vector in records:
            terms = {} if payload is None else self.indexing.payload_terms(payload)
            width = 0 if not dims or vector is None or len(vector) % (dims * 4) else dims
            args += [key, str(seq), terms_text(terms), scope_tags(key), width]
        return args


def _scope_filter(scope: str | None, sep: str) -> str:
    return "" if scope is None else f"{sep}@s:{{{scope_tag(scope)}}}"


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _as_dict(reply: Any) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat list of pairs, with text keys."""
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    items = list(reply)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _key_of(doc_id: str) -> str:
    """The memory key of a document id ``<base>f:<key>`` or ``<base>fv:<i>:<key>``."""
    rest = doc_id[doc_id.index("}:") + 2 :]
    if rest.startswith("f:"):
        return rest[2:]
    return rest[rest.index(":", 3) + 1 :]


def _rows(reply: Any, *, scores: bool) -> list[tuple[str, float, dict[str, str]]]:
    """``(key, score, fields)`` of an FT.SEARCH reply, RESP3 or RESP2."""
    rows = []
    if isinstance(reply, dict) or (
        isinstance(reply, list) and reply and isinstance(reply[0], dict)
    ):
        body = _as_dict(reply)
        for result in body.get("results", []):
            item = _as_dict(result)
            fields = _as_dict(item.get("extra_attributes", {}))
            score = float(item.get("score", 0.0) or 0.0)
            rows.append(
                (_key_of(_text(item["id"])), score, {k: _text(v) for k, v in fields.items()})
            )
        return rows
    items = list(reply)[1:]
    step = 3 if scores else 2
    for i in range(0, len(items) - step + 1, step):
        doc_id = _text(items[i])
        score = float(_text(items[i + 1])) if scores else 0.0
        fields = _as_dict(items[i + step - 1] or [])
        rows.append((_key_of(doc_id), score, {k: _text(v) for k, v in fields.items()}))
    return rows


def _aggregate_rows(reply: Any) -> list[tuple[str, float, dict[str, str]]]:
    """``(key, score, fields)`` of an FT.AGGREGATE reply that loaded ``__key`` and ``q`` with
    ``ADDSCORES``, RESP3 or RESP2."""
    if isinstance(reply, dict):
        items = [_as_dict(r).get("extra_attributes", {}) for r in _as_dict(reply)["results"]]
    else:
        items = list(reply)[1:]
    rows = []
    for item in items:
        fields = {k: _text(v) for k, v in _as_dict(item).items()}
        rows.append((_key_of(fields["__key"]), float(fields.get("__score", 0.0)), fields))
    return rows


def _total(reply: Any) -> int:
    """``total_results`` of an FT.SEARCH reply, RESP3 or RESP2."""
    if isinstance(reply, dict):
        return int(_as_dict(reply).get("total_results", 0))
    return int(reply[0])


def _seq(fields: Mapping[str, str]) -> int | None:
    value = fields.get("q")
    return None if value is None else int(float(value))


async def _mark(client: Any, bases: list[str], field: str, value: str) -> None:
    """Set a fact in every partition's ``n`` hash."""
    for base in bases:
        await client.hset(base + "n", field, value)


async def _unmark(client: Any, bases: list[str], *fields: str) -> None:
    """Remove facts from every partition's ``n`` hash."""
    for base in bases:
        await client.hdel(base + "n", *fields)


def _vector_field(dims: int) -> list[Any]:
    return ["e", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", dims, "DISTANCE_METRIC", "COSINE"]


async def _facts(client: Any, bases: list[str], field: str) -> list[str | None]:
    """One fact of every partition."""
    values = [await client.hget(base + "n", field) for base in bases]
    return [None if v is None else _text(v) for v in values]


async def _has_vectors(client: Any, bases: list[str]) -> bool:
    """True if any partition stores embeddings."""
    for base in bases:
        if await client.hlen(base + "e"):
            return True
    return False
