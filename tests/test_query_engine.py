"""Search in the Redis Query Engine (``search_engine="redis"`` / ``"auto"``) on a real server.

What is promised: a process that searches there keeps no replica; it finds exactly the
memories in-process search finds (the same keys; semantic scores equal, keyword ranked by the
engine's BM25); other processes' writes, deletes and expiries show at once; a namespace
written before the index is backfilled and never answers with memories missing meanwhile; an
outage's journal replays with its search documents; and a server without the engine is named
in an error for ``"redis"`` and served by the replica for ``"auto"``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (
    before_the_embedder_record,
    copies_dropped,
    documented_acl,
    eventually,
    fast_recovery,
    found_in_engine,
    namespace,
    replayed,
)
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendError
from tta_dev_primitives.search._scopes import in_scope
from tta_dev_primitives.stores._redis.documents import (
    encode_term,
    prefix_tokens,
    scope_tags,
    terms_text,
)
from tta_dev_primitives.stores._redis.layout import DOC, Layout
from tta_dev_primitives.testing import capture_spans

pytestmark = pytest.mark.redis

CONCEPTS = {"peanut": 0, "snack": 0, "car": 1, "brakes": 1, "hike": 2, "trail": 2}
DIMS = 4
WORDS = [*CONCEPTS, "tuesday", "walked", "fixed", "which", "the", "日本", "getUserName"]


def _vec(text: str) -> list[float]:
    v = [0.0] * DIMS
    for word in re.findall(r"\w+", text.lower()):
        v[CONCEPTS.get(word, 3)] += 1.0
    return v if any(v) else [0.0, 0.0, 0.0, 1.0]


async def embed(texts: list[str]) -> list[list[float]]:
    return [_vec(t) for t in texts]


def _unit(text: str) -> Any:
    v = np.asarray(_vec(text), dtype=np.float64)
    return v / np.linalg.norm(v)


def engine_memory(url: str, ns: str | None = None, **options: Any) -> MemoryPrimitive:
    """A memory on the engine; a timeout that a loaded machine cannot run out (none of these
    tests is about timeouts, and a fallback would answer from the in-process copy)."""
    options.setdefault("redis_timeout", 10.0)
    return MemoryPrimitive(url, namespace=ns or namespace(), search_engine="redis", **options)


# -- the document a memory gets -------------------------------------------------------------------


@given(st.text(min_size=1, max_size=20))
def test_an_encoded_term_is_one_token_and_keeps_its_prefixes(term: str) -> None:
    """Encoded terms hold only [a-z0-9_] (the engine never splits them) and keep prefixes."""
    token = encode_term(term)
    assert re.fullmatch(r"[a-z0-9_]+", token)
    for cut in range(1, len(term) + 1):
        patterns = prefix_tokens(term[:cut])
        assert all(p.endswith("*") and re.fullmatch(r"[a-z0-9_]+", p[:-1]) for p in patterns)
        assert any(token.startswith(p[:-1]) for p in patterns)


def test_scope_tags_name_whole_segments_only() -> None:
    """A key's tags are its ``:`` prefixes and itself; ``u1`` is never ``u10``'s scope."""
    assert len(scope_tags("u1:s1:t3").split(",")) == 3
    assert in_scope("u1:s1:t3", "u1")
    assert in_scope("u1:s1", "u1:s1")
    assert not in_scope("u10:s1", "u1")
    assert terms_text({"hike": 2, "日本": 1}).split() == ["hike", "hike", "_e697a5e69cac"]


# -- searching in the engine ----------------------------------------------------------------------


async def test_a_searching_process_keeps_no_replica_and_sees_other_processes_at_once(
    redis_query_engine: RedisServer,
) -> None:
    """Writes, deletes and expiries made by one process show in another's next search, which
    runs in the engine (span and info say so) and loads no replica."""
    ns = namespace()
    writer = engine_memory(redis_query_engine.url, ns)
    reader = engine_memory(redis_query_engine.url, ns)
    await writer.add("u1:s1:1", {"content": "we hiked the mountain trail"})
    await writer.add("u1:s1:2", {"content": "the trail was muddy"}, ttl=600)
    await writer.add("u10:s1:1", {"content": "another user's trail"})
    with capture_spans() as spans:
        found = await reader.search_scored("which trail?", scope="u1")
    assert sorted(h.key for h in found) == ["u1:s1:1", "u1:s1:2"]
    search = next(s for s in spans if s.name == "memory.search")
    assert search.attributes is not None
    assert search.attributes["memory.search_engine"] == "redis"
    assert reader.get_backend_info()["search_engine"] == "redis"
    assert reader._store.remote.index.replicas is None  # type: ignore[union-attr]
    await writer.delete("u1:s1:1")
    await writer.touch("u1:s1:2", 0.3)  # a TTL that starts now: load can't expire it early
    await asyncio.sleep(0.5)  # past it
    assert await reader.search("trail", scope="u1") == []
    assert [h.key for h in await reader.search_scored("trail")] == ["u10:s1:1"]
    await writer.clear()
    assert await reader.search("trail") == []
    for m in (writer, reader):
        await m.aclose()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
        min_size=1, max_size=12,
    ),
    questions=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
        min_size=1, max_size=3,
    ),
    scoped=st.booleans(),
)  # fmt: skip
def test_the_engine_finds_what_in_process_search_finds(
    redis_query_engine: RedisServer, texts: list[str], questions: list[str], scoped: bool
) -> None:
    """The same memories and questions: the engine returns the same keys as in-process in every
    mode, keyword ones in the same order with equal scores, semantic and hybrid scores equal
    (to float32), and the same most-recent listing for a blank query."""

    async def run() -> None:
        local = MemoryPrimitive(embed=embed)
        remote = engine_memory(redis_query_engine.url, embed=embed)
        for i, text in enumerate(texts):
            key = f"u{i % 2}:s1:{i}"
            await local.add(key, {"content": text})
            await remote.add(key, {"content": text})
        scope = "u1" if scoped else None
        many = len(texts) + 5
        for question in questions:
            for mode in ("keyword", "semantic", "hybrid"):
                want = await local.search_scored(question, limit=many, scope=scope, mode=mode)
                got = await remote.search_scored(question, limit=many, scope=scope, mode=mode)
                assert sorted(h.key for h in got) == sorted(h.key for h in want), mode
                if mode == "keyword":  # our BM25 on the engine's candidates: the same ranking
                    assert [h.key for h in got] == [h.key for h in want]
                    pairs = zip(got, want, strict=True)
                    assert all(abs(g.score - w.score) <= 1e-9 for g, w in pairs)
                if mode != "keyword":  # hybrid: the same keyword feedback on both sides
                    scores = {h.key: h.score for h in want}
                    assert all(abs(h.score - scores[h.key]) < 1e-5 for h in got), mode
        want = await local.search_scored("", limit=5, scope=scope)
        got = await remote.search_scored("", limit=5, scope=scope)
        assert [h.key for h in got] == [h.key for h in want]
        assert remote.get_backend_info()["search_engine"] == "redis"
        await remote.clear()
        for m in (local, remote):
            await m.aclose()

    asyncio.run(run())


async def test_ties_rank_the_newest_write_first(redis_query_engine: RedisServer) -> None:
    """Equal scores (same words, same length) come newest first, as in-process."""
    memory = engine_memory(redis_query_engine.url)
    for i in range(30):
        await memory.add(f"u1:s1:{i:02d}", {"content": f"tea time {i}"})
    found = await memory.search("tea time", limit=5)
    assert [v["content"] for v in found] == [f"tea time {i}" for i in (29, 28, 27, 26, 25)]
    await memory.clear()
    await memory.aclose()


@pytest.mark.parametrize("per_call", [False, True], ids=["memory_weight", "search_weight"])
@pytest.mark.parametrize("scope", [None, "u1"])
async def test_hybrid_in_the_engine_scores_on_the_fixed_scale(
    redis_query_engine: RedisServer, scope: str | None, per_call: bool
) -> None:
    """Each hybrid hit scores (1 - w) * BM25 / ceiling + w * max(cosine, 0), with the engine's
    own BM25, the ceiling of the scope's (or namespace's) counts and the engine's cosine to the
    question's vector with keyword feedback (0.3 of the way to its two best keyword matches'),
    as in-process; w the memory's, or the search's own."""
    made = {} if per_call else {"hybrid_weight": 0.3}
    asked = {"hybrid_weight": 0.3} if per_call else {}
    memory = engine_memory(redis_query_engine.url, embed=embed, **made)
    texts = ["car brakes on tuesday", "tuesday hike", "snack time", "brakes again", "a trail"]
    for i, text in enumerate(texts):
        await memory.add(f"u{i % 2}:s1:{i}", {"content": text})
    question = "tuesday brakes"
    members = [t for i, t in enumerate(texts) if scope is None or f"u{i % 2}" == scope]
    dfs = [sum(w in t for t in members) for w in ("tuesday", "brakes")]
    top = 2.5 * sum(math.log(1 + (len(members) - df + 0.5) / (df + 0.5)) for df in dfs if df)
    kw = {h.key: h.score for h in await memory.search_scored(question, 10, scope=scope,
                                                             mode="keyword")}  # fmt: skip
    text_of = {f"u{i % 2}:s1:{i}": t for i, t in enumerate(texts)}
    best_two = [_unit(text_of[k]) for k in kw][:2]  # kw: best first
    moved = 0.7 * _unit(question) + 0.3 * np.mean(best_two, axis=0)
    moved /= np.linalg.norm(moved)
    hybrid = await memory.search_scored(question, limit=10, scope=scope, **asked)
    assert set(kw) <= {h.key for h in hybrid}
    for hit in hybrid:
        cosine = float(_unit(text_of[hit.key]) @ moved)
        want = 0.7 * kw.get(hit.key, 0.0) / top + 0.3 * max(cosine, 0.0)
        assert hit.score == pytest.approx(want, rel=1e-5, abs=1e-6)
    await memory.clear()
    await memory.aclose()


@pytest.mark.parametrize("stored", [np.full(DIMS, np.nan), np.zeros(DIMS)], ids=["nan", "zero"])
async def test_a_match_whose_stored_vector_is_not_one_gives_no_keyword_feedback(
    redis_query_engine: RedisServer, stored: Any
) -> None:
    """A keyword match whose document holds bytes that are no vector (NaN, zero: the engine
    indexes them) is taken as a match without one by the keyword feedback: the hybrid search
    answers, as the replica would, instead of failing on the engine's data."""
    import redis.asyncio as aioredis

    ns = namespace()
    memory = engine_memory(redis_query_engine.url, ns, embed=embed)
    await memory.add("u1:s1:1", {"content": "brakes brakes"})
    await memory.add("u1:s1:2", {"content": "car brakes tuesday"})
    admin = aioredis.Redis.from_url(redis_query_engine.url)
    doc = Layout(ns).base("u1:s1:1") + DOC + "u1:s1:1"
    await admin.hset(doc, "e", np.asarray(stored, dtype="<f4").tobytes())
    await admin.aclose()
    keyword = await memory.search_scored("brakes", mode="keyword")
    assert keyword[0].key == "u1:s1:1"
    found = await memory.search_scored("brakes", mode="hybrid")
    assert {h.key for h in found} == {"u1:s1:1", "u1:s1:2"}
    await memory.clear()
    await memory.aclose()


async def test_further_vectors_score_a_memory_by_its_best(redis_query_engine: RedisServer) -> None:
    """A memory with several vectors is found by any of them, once, and they go with it."""
    memory = engine_memory(redis_query_engine.url, embed=embed)
    await memory.add("u1:s1:1", {"content": "notes"}, vector_text=["car brakes", "hike trail"])
    await memory.add("u1:s1:2", {"content": "snack"})
    found = await memory.search_scored("trail", mode="semantic")
    assert [h.key for h in found][:1] == ["u1:s1:1"]
    assert [h.key for h in found].count("u1:s1:1") == 1
    await memory.delete("u1:s1:1")
    assert [h.key for h in await memory.search_scored("trail", mode="semantic")] == ["u1:s1:2"]
    await memory.clear()
    await memory.aclose()


async def test_a_blank_query_lists_a_memory_of_several_vectors_once(
    redis_query_engine: RedisServer,
) -> None:
    """The newest list names a memory once, however many further vectors it has (review R18)."""
    memory = engine_memory(redis_query_engine.url, embed=embed)
    await memory.add("u1:s1:old", {"content": "notes"})
    many = [f"part {i}" for i in range(60)]  # more rows than the engine is first asked for
    await memory.add("u1:s1:multi", {"content": "notes"}, vector_text=many)
    await memory.add("u1:s1:new", {"content": "notes"})
    for scope in (None, "u1"):
        listed = [key for key, _ in await memory.search_items("", 10, scope=scope)]
        assert listed == ["u1:s1:new", "u1:s1:multi", "u1:s1:old"]
        assert [k for k, _ in await memory.search_items("", 3, scope=scope)] == listed
    await memory.clear()
    await memory.aclose()


async def test_another_embedders_vectors_stay_found_by_keyword(
    redis_query_engine: RedisServer,
) -> None:
    """The index keeps the first embedder's size; memories with vectors of another size are
    still in the index by keyword, and found by meaning through the replica."""
    ns = namespace()
    # (Written by a version before the embedder record: now another embedder is refused.)
    first = before_the_embedder_record(engine_memory(redis_query_engine.url, ns, embed=embed))
    await first.add("u1:s1:1", {"content": "snack"})
    other = engine_memory(redis_query_engine.url, ns, embed=lambda t: [[1.0, 0.0]] * len(t))
    await other.add("u1:s1:2", {"content": "peanut butter"})
    assert [h.key for h in await first.search_scored("peanut", mode="keyword")] == ["u1:s1:2"]
    assert next(h.key for h in await other.search_scored("butter", mode="semantic")) == "u1:s1:2"
    await first.clear()
    for m in (first, other):
        await m.aclose()


@pytest.mark.parametrize("server", ["redis_server", "redis_query_engine"])
async def test_another_model_s_vector_twice_this_size_is_not_read_as_two(
    request: pytest.FixtureRequest, server: str
) -> None:
    """A memory may hold several vectors, stored end to end without their count, so another
    model's vector of twice this embedder's size (768 beside 384) divides into two of it, and
    was scored by meaning, by its halves. Only unit rows are read as vectors of this size; a
    memory with several vectors of this size still is."""
    url = request.getfixturevalue(server).url
    engine = "replica" if server == "redis_server" else "redis"
    ns = namespace()

    def small(texts: list[str]) -> list[list[float]]:
        return [[1.0, 2.0, 3.0, float(len(t))] for t in texts]

    def big(texts: list[str]) -> list[list[float]]:
        return [[1.0 + i + len(t) % 3 for i in range(8)] for t in texts]

    # (Written by a version before the embedder record: now another embedder is refused.)
    a = MemoryPrimitive(url, namespace=ns, embed=small, search_engine=engine)
    before_the_embedder_record(a)
    await a.add("u1:s1:a", {"content": "the garage fixed the brakes"})
    b = MemoryPrimitive(url, namespace=ns, embed=big, search_engine=engine)
    await b.add("u1:s1:b", {"content": "I am allergic to peanuts"})
    await a.add("u1:s1:c", {"content": "notes"}, vector_text=["a title", "a longer body"])
    found = await a.search_scored("what did the garage say", 5, scope="u1", mode="semantic")
    assert sorted(h.key for h in found) == ["u1:s1:a", "u1:s1:c"]
    by_word = await a.search_scored("peanuts", scope="u1", mode="keyword")
    assert [h.key for h in by_word] == ["u1:s1:b"]
    await a.clear()
    for m in (a, b):
        await m.aclose()


# -- choosing the engine, and moving a namespace between them -------------------------------------


async def test_a_user_refused_the_engine_is_told_it_may_be_the_acl(
    redis_query_engine: RedisServer,
) -> None:
    """A Redis user lacking +ft.info on a server with the engine was told the server does not
    offer it (review R20): the error now names the ACL too."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(redis_query_engine.url)
    await admin.execute_command("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all",
                                "-ft.info")  # fmt: skip
    await admin.aclose()
    url = redis_query_engine.url.replace("redis://", "redis://noinfo:pw@", 1)
    strict = engine_memory(url)
    with pytest.raises(BackendError, match="or this Redis user may not use"):
        await strict.search("hello")
    await strict.aclose()


async def test_redis_without_the_engine_is_an_error_and_auto_uses_the_replica(
    redis_server: RedisServer,
) -> None:
    """On plain Redis, search_engine="redis" names what is missing; "auto" searches a replica."""
    strict = engine_memory(redis_server.url)
    with pytest.raises(BackendError, match="needs the Redis Query Engine"):
        await strict.search("hello")
    await strict.aclose()
    auto = MemoryPrimitive(redis_server.url, namespace=namespace())
    await auto.add("u1:s1:1", {"content": "hello there"})
    assert [v["content"] for v in await auto.search("hello")] == ["hello there"]
    assert auto.get_backend_info()["search_engine"] == "replica"
    await auto.clear()
    await auto.aclose()


async def test_a_namespace_written_before_the_index_is_backfilled_without_missing_answers(
    redis_query_engine: RedisServer,
) -> None:
    """Memories written with the replica engine are indexed in pages when a process first asks
    for the engine; until that is done its searches (by the replica) miss nothing, after it
    they run in the engine; a replica process still sees the engine process's writes."""
    ns = namespace()
    old = MemoryPrimitive(
        redis_query_engine.url, namespace=ns, search_engine="replica", redis_timeout=10.0
    )
    for start in range(0, 2500, 500):
        await asyncio.gather(*(
            old.add(f"u{i % 7}:s1:{i}", {"content": f"note {i} about the garden"})
            for i in range(start, start + 500)
        ))  # fmt: skip
    new = engine_memory(redis_query_engine.url, ns)
    first = await new.search("garden", limit=3000)
    assert len(first) == 2500  # complete, whichever engine answered
    await new._store.remote.index.engine.wait_backfill()  # type: ignore[union-attr]
    found = await new.search("garden", limit=3000, scope="u3")
    assert len(found) == len([i for i in range(2500) if i % 7 == 3])
    assert new.get_backend_info()["search_engine"] == "redis"
    await new.add("u3:s1:new", {"content": "a new garden bed"})
    assert "a new garden bed" in [v["content"] for v in await old.search("garden bed", limit=3)]
    await old.clear()
    for m in (old, new):
        await m.aclose()


async def test_a_namespace_filled_by_writes_alone_needs_no_backfill_before_its_first_search(
    redis_query_engine: RedisServer,
) -> None:
    """An import (writes, no search) into a new namespace: every memory kept its document as
    it was written, so the first search in another process is the engine's, with no backfill
    (which read the whole change feed again while searches used a replica, in every process
    that searched)."""
    import redis.asyncio as aioredis

    ns = namespace()
    loader = engine_memory(redis_query_engine.url, ns)
    for start in range(0, 1500, 500):  # more than one backfill page (PAGE_COUNT)
        await asyncio.gather(*(
            loader.add(f"u{i % 7}:s1:{i}", {"content": f"note {i} about the garden"})
            for i in range(start, start + 500)
        ))  # fmt: skip
    worker = engine_memory(redis_query_engine.url, ns)
    found = await worker.search("garden", limit=2000, scope="u3")
    assert len(found) == len([i for i in range(1500) if i % 7 == 3])
    assert worker.get_backend_info()["search_engine"] == "redis"
    client = aioredis.Redis.from_url(redis_query_engine.url)
    for base in loader._store.remote.layout.bases:  # type: ignore[union-attr]
        facts = await client.hgetall(Layout.facts(base))
        assert facts.get(b"ftdone") == b"1"
        assert b"ftnext" not in facts  # no backfill page ran
    await client.aclose()
    await loader.clear()
    for m in (loader, worker):
        await m.aclose()


async def test_a_backfill_another_process_has_under_way_is_not_done_again(
    redis_query_engine: RedisServer,
) -> None:
    """While another process holds a partition's backfill lease, a process's search leaves
    the backfill to it (no page of its own) and answers in full with its replica; once the
    lease is gone, it takes the backfill over where it stands."""
    import redis.asyncio as aioredis

    ns = namespace()
    old = MemoryPrimitive(
        redis_query_engine.url, namespace=ns, search_engine="replica", redis_timeout=10.0
    )
    await asyncio.gather(*(
        old.add(f"u{i % 7}:s1:{i}", {"content": f"note {i} about the garden"})
        for i in range(300)
    ))  # fmt: skip
    bases = old._store.remote.layout.bases  # type: ignore[union-attr]
    # The process holding the lease found the index first (a process that finds the
    # namespace's documents in another form restarts the backfill, ending any lease).
    holder = engine_memory(redis_query_engine.url, ns)
    await holder._store.remote.index.prepare()  # type: ignore[union-attr]
    client = aioredis.Redis.from_url(redis_query_engine.url)
    for base in bases:
        await client.set(Layout.backfill_lease(base), "another process", px=60_000)
    worker = engine_memory(redis_query_engine.url, ns)
    assert len(await worker.search("garden", limit=500)) == 300
    assert worker.get_backend_info()["search_engine"] != "redis"
    for base in bases:
        assert await client.hget(Layout.facts(base), "ftnext") is None  # no page of its own
        await client.delete(Layout.backfill_lease(base))  # that process is gone
    assert len(await worker.search("garden", limit=500)) == 300
    await worker._store.remote.index.engine.wait_backfill()  # type: ignore[union-attr]
    assert len(await worker.search("garden", limit=500, scope="u3")) == 43
    assert worker.get_backend_info()["search_engine"] == "redis"
    await client.aclose()
    await old.clear()
    for m in (old, holder, worker):
        await m.aclose()


@pytest.fixture
def engine_server(redis_query_engine: RedisServer) -> Iterator[RedisServer]:
    """A Query Engine server of the test's own, to kill and restart with its data (AOF)."""
    server = RedisServer(
        redis_query_engine.binary, appendonly=True, extra=redis_query_engine.extra
    ).start()
    yield server
    server.stop()


async def test_writes_journalled_during_an_outage_are_searchable_in_the_engine_after_replay(
    engine_server: RedisServer,
) -> None:
    """The journal carries each write's search document: after the replay another process
    finds the outage's memories in the engine."""
    server = engine_server
    ns = namespace()
    memory = fast_recovery(server.url, ns, search_engine="redis")
    await memory.add("u1:s1:1", {"content": "before the outage"})
    server.kill()
    await memory.add("u1:s1:2", {"content": "during the outage"})
    assert memory.get_backend_info()["degraded"] is True
    server.start()
    await replayed(memory)
    reader = engine_memory(server.url, ns)
    assert sorted(v["content"] for v in await reader.search("outage")) == [
        "before the outage", "during the outage",
    ]  # fmt: skip
    assert reader.get_backend_info()["search_engine"] == "redis"
    for m in (memory, reader):
        await m.clear()
        await m.aclose()


async def test_what_another_process_deleted_is_not_served_in_an_outage_with_the_engine(
    engine_server: RedisServer,
) -> None:
    """With the engine no replica follows the feed; the in-process copy is checked against
    Redis's versions instead, so the next outage serves neither a memory another process
    deleted ("forget my address") nor one it overwrote."""
    server = engine_server
    ns = namespace()
    a = fast_recovery(server.url, ns, search_engine="redis")
    b = engine_memory(server.url, ns)
    await a.add("u1:s1:addr", {"content": "my address is 1 Main Street"})
    await a.add("u1:s1:pet", {"content": "my pet is a cat"})
    assert len(await a.search("address pet", scope="u1")) == 2
    await b.delete("u1:s1:addr")
    await b.add("u1:s1:pet", {"content": "my pet is a dog"})

    await copies_dropped(a, "u1:s1:addr", "u1:s1:pet")
    with server.stalled():
        assert await a.get("u1:s1:addr") is None
        assert await a.search("address") == []
        assert await a.get("u1:s1:pet") != {"content": "my pet is a cat"}
    await replayed(a)
    await b.clear()
    for m in (a, b):
        await m.aclose()


#: What a user needs beyond the plain-Redis ACL to search in the engine: docs/production.md's.
ENGINE_ACL = " ".join(documented_acl(engine=True)[len(documented_acl()) :])


async def test_the_documented_acl_is_enough_for_the_engine(
    engine_server: RedisServer,
) -> None:
    """A user with the documented commands (plain ACL plus the engine's) searches in the
    engine, with vectors, and never falls back."""
    import redis.asyncio as aioredis

    from test_redis_store import ACL_COMMANDS

    admin = aioredis.Redis.from_url(engine_server.url)
    await admin.execute_command(
        "ACL", "SETUSER", "tta", "on", ">tta-secret", "resetkeys", "~tta:acl:*", "-@all",
        *ACL_COMMANDS.split(), *ENGINE_ACL.split(),
    )  # fmt: skip
    await admin.aclose()
    url = f"redis://tta:tta-secret@127.0.0.1:{engine_server.port}/0"
    memory = engine_memory(url, "tta:acl", embed=embed)
    await memory.add("u1:s1:a", {"content": "least privilege"}, ttl=60)
    await memory.add("u1:s1:b", {"content": "privilege trail"})
    assert len(await memory.search("privilege", scope="u1:s1")) == 2
    assert len(await memory.search_scored("trail", mode="semantic")) == 2
    assert len(await memory.search("")) == 2
    assert await memory.delete("u1:s1:b") is True
    await memory.clear()
    assert memory.get_backend_info()["search_engine"] == "redis"
    assert memory.get_backend_info()["degraded"] is False
    await memory.aclose()


async def test_eight_processes_starting_at_once_all_answer_in_full(
    redis_query_engine: RedisServer,
) -> None:
    """Eight fresh OS processes search a namespace of 3,000 memories at the same moment: each
    answers with the full result list a warm process gives, none falls back."""
    import json
    import sys
    import textwrap

    ns = namespace()
    warm = engine_memory(redis_query_engine.url, ns)
    for start in range(0, 3000, 500):
        await asyncio.gather(*(
            warm.add(f"u{i % 6}:s{i % 3}:{i}", {"content": f"turn {i} about the garden and tea"})
            for i in range(start, start + 500)
        ))  # fmt: skip
    want = [h.key for h in await warm.search_scored("what about my garden?", limit=10)]
    scoped = [h.key for h in await warm.search_scored("garden tea", limit=10, scope="u2")]
    code = textwrap.dedent(f"""
        import asyncio, json
        from tta_dev_primitives import MemoryPrimitive

        async def main():
            m = MemoryPrimitive({redis_query_engine.url!r}, namespace={ns!r},
                                search_engine="redis", redis_timeout=10.0)
            a = await m.search_scored("what about my garden?", limit=10)
            b = await m.search_scored("garden tea", limit=10, scope="u2")
            info = m.get_backend_info()
            print(json.dumps([[h.key for h in a], [h.key for h in b], info["search_engine"],
                              info["degraded"]]))
            await m.aclose()

        asyncio.run(main())
    """)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(8)
    ]
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0
        assert json.loads(out) == [want, scoped, "redis", False]
    assert len(want) == 10
    await warm.clear()
    await warm.aclose()


async def test_a_user_who_may_not_create_the_index_searches_with_a_replica(
    engine_server: RedisServer,
) -> None:
    """Without +ft.create, "auto" searches a replica in full and "redis" names the refusal."""
    import redis.asyncio as aioredis

    from test_redis_store import ACL_COMMANDS

    admin = aioredis.Redis.from_url(engine_server.url)
    reading_only = [c for c in ENGINE_ACL.split() if c not in ("+ft.create", "+ft.alter")]
    await admin.execute_command(
        "ACL", "SETUSER", "tta", "on", ">tta-secret", "resetkeys", "~tta:acl:*", "-@all",
        *ACL_COMMANDS.split(), *reading_only,
    )  # fmt: skip
    await admin.aclose()
    url = f"redis://tta:tta-secret@127.0.0.1:{engine_server.port}/0"
    auto = MemoryPrimitive(url, namespace="tta:acl", redis_timeout=10.0)
    await auto.add("u1:s1:a", {"content": "least privilege"})
    assert len(await auto.search("privilege")) == 1
    assert auto.get_backend_info()["search_engine"] == "replica"
    strict = engine_memory(url, "tta:acl")
    with pytest.raises(BackendError, match="could not be created"):
        await strict.search("privilege")
    await auto.clear()
    for m in (auto, strict):
        await m.aclose()


async def test_an_index_dropped_by_hand_is_made_again_and_answers_in_full(
    redis_query_engine: RedisServer,
) -> None:
    """FT.DROPINDEX leaves the documents: the next process makes the index again, answers in
    full while the engine scans them, and then searches in the engine."""
    import redis.asyncio as aioredis

    ns = namespace()
    first = engine_memory(redis_query_engine.url, ns)
    for i in range(300):
        await first.add(f"u{i % 3}:s1:{i}", {"content": f"turn {i} about the garden"})
    assert len(await first.search("garden", limit=500)) == 300
    await first.aclose()
    admin = aioredis.Redis.from_url(redis_query_engine.url)
    await admin.execute_command("FT.DROPINDEX", Layout.index_name(ns))
    await admin.aclose()
    again = engine_memory(redis_query_engine.url, ns)
    assert len(await again.search("garden", limit=500)) == 300

    await eventually(lambda: found_in_engine(again, "garden", 300), within=30)
    await again.clear()
    await again.aclose()


async def test_an_index_dropped_with_its_documents_is_filled_again(
    redis_query_engine: RedisServer,
) -> None:
    """FT.DROPINDEX ... DD deletes the documents too. The next search made the index again
    over none, and as the namespace's backfill was marked done nothing wrote them again: every
    memory from before the drop stayed unfindable by search, in this process and every new one,
    while get and size still saw them (R10). A set-up now counts the engine's documents against
    the memories before it trusts the index, and writes them again: searches answer in full
    meanwhile (from a replica), then in the engine."""
    import redis.asyncio as aioredis

    ns = namespace()
    first = engine_memory(redis_query_engine.url, ns)
    for i in range(300):
        await first.add(f"u{i % 3}:s1:{i}", {"content": f"turn {i} about the garden"})
    assert len(await first.search("garden", limit=500)) == 300
    admin = aioredis.Redis.from_url(redis_query_engine.url)
    await admin.execute_command("FT.DROPINDEX", Layout.index_name(ns), "DD")
    await admin.aclose()
    assert len(await first.search("garden", limit=500)) == 300
    again = engine_memory(redis_query_engine.url, ns)

    async def in_engine() -> bool:
        return all([await found_in_engine(m, "garden", 300) for m in (first, again)])

    await eventually(in_engine, within=60)
    await again.clear()
    for memory in (first, again):
        await memory.aclose()


async def test_an_index_dropped_while_a_set_up_counts_its_documents_is_no_error(
    redis_query_engine: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count of the engine's documents (after FT.DROPINDEX ... DD, above) reads each
    index's FT.INFO: an index dropped just before (by hand, a layout change) raised "Unknown
    index name" to the search as a BackendError. It is found out again instead: that search
    answers from the replica, and a later one in the engine."""
    import redis.asyncio as aioredis

    from tta_dev_primitives.stores._redis import query_engine

    ns = namespace()
    writer = engine_memory(redis_query_engine.url, ns)
    for i in range(30):
        await writer.add(f"u{i % 2}:s1:{i}", {"content": f"turn {i} about the garden"})
    assert len(await writer.search("garden", limit=100)) == 30
    real_memories = query_engine._memories
    dropped = False

    async def memories_then_drop(client: Any, bases: list[str]) -> int:
        nonlocal dropped
        counted = await real_memories(client, bases)
        if not dropped:
            dropped = True
            admin = aioredis.Redis.from_url(redis_query_engine.url)
            await admin.execute_command("FT.DROPINDEX", Layout.index_name(ns))
            await admin.aclose()
        return counted

    monkeypatch.setattr(query_engine, "_memories", memories_then_drop)
    fresh = engine_memory(redis_query_engine.url, ns)
    assert len(await fresh.search("garden", limit=100)) == 30
    assert dropped

    await eventually(lambda: found_in_engine(fresh, "garden", 30, limit=100), within=30)
    await writer.clear()
    for memory in (writer, fresh):
        await memory.aclose()


async def test_a_process_that_finds_the_index_still_scanning_waits_for_the_scan(
    redis_query_engine: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index another process made again over kept documents (an FT.DROPINDEX by hand, a new
    master) answers part of them until the engine's scan ends. A process that found it so
    (``FT.INFO``'s ``indexing``) searched it at once, missing memories (R10: 85 of 100 at
    100,000 memories); it now searches its replica until the scan ends, as the process that
    made it does. RediSearch 2.10 scans a few hundred documents in milliseconds and cannot be
    paused, so the scan is drawn out here by its report: ``indexing`` stays 1 while held."""
    from tta_dev_primitives.stores._redis import query_engine

    ns = namespace()
    first = engine_memory(redis_query_engine.url, ns)
    for i in range(50):
        await first.add(f"u{i % 2}:s1:{i}", {"content": f"turn {i} about the garden"})
    assert len(await first.search("garden", limit=100)) == 50
    scanning = True
    real_info = query_engine.index_info

    async def still_scanning(client: Any, shard: Any) -> Any:
        info = await real_info(client, shard)
        return {**info, "indexing": True} if info and info["exists"] and scanning else info

    monkeypatch.setattr(query_engine, "index_info", still_scanning)
    fresh = engine_memory(redis_query_engine.url, ns)
    assert len(await fresh.search("garden", limit=100)) == 50
    assert fresh.get_backend_info()["search_engine"] != "redis"  # its replica answered
    scanning = False

    await eventually(lambda: found_in_engine(fresh, "garden", 50, limit=100), within=30)
    await first.clear()
    for memory in (first, fresh):
        await memory.aclose()


async def test_a_search_after_the_server_lost_its_index_makes_it_again(
    redis_query_engine: RedisServer,
) -> None:
    """A Redis restarted without its data (no persistence, or flushed) has no index: this
    process's next search makes it again and answers, in every mode, instead of raising
    'no such index' until some other process happens to make it."""
    server = RedisServer(redis_query_engine.binary, extra=redis_query_engine.extra).start()
    try:
        memory = fast_recovery(server.url, search_engine="redis", embed=embed, dims=DIMS)
        await memory.add("u1:s1:1", {"content": "the garage fixed the brakes"})
        found = await memory.search_scored("car", mode="semantic", scope="u1")
        assert [h.key for h in found] == ["u1:s1:1"]
        server.kill()
        server.start()  # empty: no AOF, no RDB
        await memory.add("u1:s1:2", {"content": "a peanut snack"})
        await replayed(memory)
        for mode in ("semantic", "hybrid", "keyword"):
            found = await memory.search_scored("peanut", mode=mode, scope="u1")
            assert [h.key for h in found][:1] == ["u1:s1:2"], mode

        async def in_engine() -> bool:
            found = await memory.search_scored("peanut", mode="hybrid", scope="u1")
            engine = memory.get_backend_info()["search_engine"]
            return [h.key for h in found][:1] == ["u1:s1:2"] and engine == "redis"

        await eventually(in_engine, within=30)
        await memory.aclose()
    finally:
        server.stop()


async def test_every_engine_query_carries_a_time_limit_past_the_client_s(
    redis_query_engine: Any,
) -> None:
    """A Query Engine as shipped cuts a query off at 500 ms and, with ``ON_TIMEOUT RETURN``,
    answers with what it found so far as if that were all: at 100,000 memories with the limit
    at 2 ms, 8 of 50 unscoped searches ranked differently, and nothing said so. Every query the
    library sends names its own ``TIMEOUT``, longer than the client waits for it, so a query is
    answered whole or not waited for. (Seen on the server with ``MONITOR``: no timing here.)"""
    import redis.asyncio as aioredis

    from tta_dev_primitives.stores._redis.query_engine import query_timeout_ms

    memory = engine_memory(redis_query_engine.url, redis_timeout=2.0, embed=embed)
    for i, text in enumerate(["peanut snack on tuesday", "fixed the car brakes", "hike trail"]):
        await memory.add(f"u1:s{i}:t", {"content": text})
    await memory.search("warm")  # the index is made and ready before the watch
    admin = aioredis.Redis.from_url(redis_query_engine.url, decode_responses=True)
    seen: list[str] = []
    async with admin.monitor() as watch:

        async def listen() -> None:
            async for command in watch.listen():
                seen.append(command["command"])

        listening = asyncio.create_task(listen())
        await memory.search("peanut snack", mode="keyword")
        await memory.search("peanut snack", mode="keyword", scope="u1")
        await memory.search("car brakes", mode="semantic")
        await memory.search("hike", mode="hybrid", scope="u1:s2")
        await memory.search("", limit=2)
        marker = aioredis.Redis.from_url(redis_query_engine.url)
        await marker.echo("watched")
        await eventually(lambda: any("watched" in c for c in seen), within=30)
        listening.cancel()
        await marker.aclose()
    queries = [c for c in seen if c.split(" ", 1)[0].strip('"').upper().startswith("FT.")]
    queries = [c for c in queries if "FT.SEARCH" in c.upper() or "FT.AGGREGATE" in c.upper()]
    assert len(queries) >= 5
    # (MONITOR's line cuts a long argument short with "...": the limit ends each line.)
    limit = f"{query_timeout_ms(2.0)} DIALECT 2"
    assert all(c.endswith(limit) for c in queries), [c for c in queries if limit not in c][:3]
    assert query_timeout_ms(2.0) > 2000
    await admin.aclose()
    await memory.clear()
    await memory.aclose()
