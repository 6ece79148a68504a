"""Names in the Query Engine: stop words written capitalised ("Will", "The Who", a memory in
CAPITALS) are terms, which in-process BM25 leaves out of a memory's length. The engine's own
BM25STD, which chooses the candidates, counted them in it while they were words of ``t``: a
memory in capitals looked long, fell out of the candidates once a question's word matched more
memories than the window, and was missing where in-process ranked it first (review R28). They
are a TAG now (``w``), out of the engine's length; the same keys come back in the same order,
on one server and on a cluster, and questions made of names still find their memories."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from conftest import eventually
from test_query_engine_ranking import PATIENT, assert_ranks_alike, side_by_side
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis.layout import Layout

pytestmark = pytest.mark.redis

ENGINES = ["redis_query_engine", "redis_query_engine_cluster"]

SHOUT = "WHERE ARE YOU AND WHAT WERE YOU DOING THERE WITH THEM WHEN WE WERE HERE? " * 3
#: More matches than the engine's window (120 for 10 hits) on every master of a 3-master
#: cluster.
MANY = 600
FILLER = ["order", "invoice", "refund", "budget", "garden", "weather", "ticket", "meeting"]


def many_matches() -> list[tuple[str, str]]:
    """A memory in capitals among ``MANY`` that share its words, over three users: 4 to 43
    terms long, so few tie (on a cluster, ties past the candidates keep the engine's order)."""
    docs = [("u2:s1:shout", "PASSWORD RESET. " + SHOUT)]
    for i in range(MANY):
        words = [FILLER[(i + j) % len(FILLER)] for j in range(i % 40)]
        docs.append((f"u{i % 3}:s{i % 2}:{i}", f"password reset request {i} " + " ".join(words)))
    return docs


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_memory_in_capitals_stays_a_candidate(request: Any, engine: str) -> None:
    """The memory in capitals is two terms long in-process and ranks first; the engine gives
    the same keys in the same order, unscoped and for its user (its stop words, names here,
    used to count in the engine's length: 50 terms, and it was missing)."""
    server = request.getfixturevalue(engine)
    async with side_by_side(server.url, many_matches()) as (local, remote):
        best = await local.search_scored("password reset?", limit=10, mode="keyword")
        assert best[0].key == "u2:s1:shout"
        await assert_ranks_alike(
            local, remote, [None, "u2"], questions=["password reset?", "password?"], found=True
        )


@pytest.mark.parametrize("engine", ENGINES)
async def test_questions_made_of_names_find_their_memories(request: Any, engine: str) -> None:
    """Questions such as "Who is Will?" and "The Who concert?" search names (alone, or beside
    a word), among more memories holding the name than the window, as in-process does."""
    docs = [
        ("u1:s1:will", "Will fixed it"),
        ("u1:s1:band", "We saw The Who live in 1982"),
        ("u1:s1:music", "A concert of chamber music"),
        # A name held often, longer than the window's memories holding it once: the engine
        # reads a TAG once, and finds it by its level tags.
        (
            "u2:s1:often",
            "Will asked, Will paid, Will left, and Will came back for the "
            "budget meeting garden weather ticket report order invoice refund",
        ),
    ]
    for key, text in many_matches()[1:]:  # (``Will`` is a name: it starts a sentence)
        docs.append((key, text.replace("password reset", "Will you check the", 1)))
    questions = ["Who is Will?", "The Who concert?", "Will?", "what about Will and The Who?"]
    questions += ["So Will came?", "Will budget?"]
    server = request.getfixturevalue(engine)
    async with side_by_side(server.url, docs) as (local, remote):
        found = await remote.search("Who is Will?", 3)
        assert {"content": "Will fixed it"} in found
        assert {"content": "We saw The Who live in 1982"} in await remote.search(
            "The Who concert?", 2
        )
        often = await local.search_scored("So Will came?", 3)
        assert "u2:s1:often" in [h.key for h in often]
        await assert_ranks_alike(local, remote, [None, "u1", "u2", "u1:s1"], questions=questions)


async def earlier_form(url: str, ns: str, docs: list[tuple[str, str]]) -> MemoryPrimitive:
    """``docs`` in the engine at ``url`` as the version before names had ``w`` left them: an
    index without the field, the names in ``t`` (no level tags), form 5; and in process (the
    memory returned)."""
    import redis.asyncio as aioredis

    from tta_dev_primitives.stores._redis import layout as names

    local = MemoryPrimitive(max_size=10_000)
    first = MemoryPrimitive(url, namespace=ns, search_engine="redis", redis_timeout=PATIENT)
    for key, text in docs:
        await local.add(key, {"content": text})
        await first.add(key, {"content": text})
    await first.search("password")
    await first.aclose()
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    layout = Layout(ns)
    await admin.execute_command("FT.DROPINDEX", Layout.index_name(ns))
    prefixes = Layout.document_prefixes(layout.bases)
    await admin.execute_command(
        "FT.CREATE", Layout.index_name(ns), "ON", "HASH",
        "PREFIX", len(prefixes), *prefixes, "STOPWORDS", 0,
        "SCHEMA", "t", "TEXT", "NOSTEM", "s", "TAG",
        "q", "NUMERIC", "SORTABLE", "n", "NUMERIC", "SORTABLE",
    )  # fmt: skip
    for key, _ in docs:
        doc = layout.base(key) + names.DOC + key
        t, w = await admin.hmget(doc, "t", "w")
        if w:
            held = [token for token in w.split() if "z" not in token[2:]]  # (no level tags)
            await admin.hset(doc, "t", " ".join([t, *held]))
            await admin.hdel(doc, "w")
    for base in layout.bases:
        await admin.hset(Layout.facts(base), names.FACT_ENGINE_FORM, "5")
    await admin.aclose()
    return local


async def test_an_index_of_the_previous_form_gets_names_and_its_documents_again(
    redis_query_engine: Any,
) -> None:
    """A namespace whose index and documents an earlier version made (names in ``t``, no
    ``w`` field, form 5): the upgraded process adds the field, writes those documents again,
    and ranks as in-process once that is done."""
    import redis.asyncio as aioredis

    from tta_dev_primitives.stores._redis import layout as names

    ns = f"rank:{uuid4().hex[:10]}"
    local = await earlier_form(redis_query_engine.url, ns, many_matches()[:200])
    admin = aioredis.Redis.from_url(redis_query_engine.url, decode_responses=True)
    shout = Layout(ns).base("u2:s1:shout") + names.DOC + "u2:s1:shout"
    assert "_27" in await admin.hget(shout, "t")
    again = MemoryPrimitive(
        redis_query_engine.url, namespace=ns, search_engine="redis", redis_timeout=PATIENT
    )

    async def in_engine() -> bool:
        await again.search("password")
        return bool(again.get_backend_info()["search_engine"] == "redis")

    try:
        await eventually(in_engine, within=30)
        await assert_ranks_alike(
            local, again, [None, "u2"], questions=["password reset?", "Where ARE You?"]
        )
        info = await admin.execute_command("FT.INFO", Layout.index_name(ns))
        added = [a for a in info["attributes"] if a["identifier"] == "w"]
        assert [(a["type"], a["SEPARATOR"]) for a in added] == [("TAG", " ")]
        assert await admin.hget(shout, "w")
        assert "_27" not in await admin.hget(shout, "t")
    finally:
        await admin.aclose()
        await again.clear()
        for memory in (local, again):
            await memory.aclose()


async def test_an_earlier_index_this_user_may_not_alter_is_searched_in_a_replica(
    redis_query_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ``+ft.alter`` (a deployment whose administrator made the index) the field
    cannot be added: "auto" searches with a replica, saying why once; "redis" raises, naming
    the permission."""
    import logging

    import redis.asyncio as aioredis

    from conftest import documented_acl
    from tta_dev_primitives.exceptions import BackendRefusedError

    ns = f"rank:{uuid4().hex[:10]}"
    local = await earlier_form(redis_query_engine.url, ns, many_matches()[:50])
    admin = aioredis.Redis.from_url(redis_query_engine.url)
    granted = [c for c in documented_acl(engine=True) if c != "+ft.alter"]
    await admin.execute_command(
        "ACL", "SETUSER", "names", "on", ">names-secret", "resetkeys", f"~{ns}:*", "-@all",
        *granted,
    )  # fmt: skip
    url = f"redis://names:names-secret@127.0.0.1:{redis_query_engine.port}/0"
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives.memory")
    auto = MemoryPrimitive(url, namespace=ns, redis_timeout=PATIENT)
    strict = MemoryPrimitive(url, namespace=ns, search_engine="redis", redis_timeout=PATIENT)
    try:
        await assert_ranks_alike(local, auto, [None, "u2"], questions=["password reset?"])
        assert auto.get_backend_info()["search_engine"] == "replica"
        warned = [r.getMessage() for r in caplog.records if "lacks the field 'w'" in r.getMessage()]
        assert len(warned) == 1
        with pytest.raises(BackendRefusedError, match=r"\+ft\.alter"):
            await strict.search("password")
    finally:
        await admin.execute_command("ACL", "DELUSER", "names")
        await admin.aclose()
        for memory in (local, auto, strict):
            await memory.aclose()
        cleaner = MemoryPrimitive(redis_query_engine.url, namespace=ns)
        await cleaner.clear()
        await cleaner.aclose()
