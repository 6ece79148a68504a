"""Semantic and hybrid recall through MemoryPrimitive, with small deterministic embedders.

The embedder here maps words to a few "concepts" (peanut and snack mean the same thing), so a
question can match a memory that shares no word with it, and every figure is exact. What is
promised: the embedder contract (sync, async, a wrong dimension, an error: nothing stored), the
hybrid laws (a pure keyword match and a pure semantic match both surface; a weight of 0 is
keyword search), outages (semantic search on the in-process copy; the journal carries vectors,
so replay never re-embeds) and parity (Redis ranks and scores exactly as in-process).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Factory, before_the_embedder_record, fast_recovery, namespace, replayed
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import EmbeddingError, InvalidArgumentError

CONCEPTS = {
    "peanut": 0, "peanuts": 0, "snack": 0, "nuts": 0, "cashew": 0,
    "allergy": 1, "allergic": 1, "avoid": 1,
    "car": 2, "garage": 2, "brakes": 2, "mechanic": 2,
    "hike": 3, "mountain": 3, "trail": 3,
}  # fmt: skip
DIMS = 8


def vector(text: str) -> list[float]:
    """Concept counts, plus a spread of the other words over the last four dimensions."""
    v = [0.0] * DIMS
    for word in re.findall(r"\w+", text.lower()):
        v[CONCEPTS.get(word, 4 + sum(map(ord, word)) % 4)] += 1.0
    return v


class Counting:
    """A sync batch embedder that counts the texts it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return [vector(t) for t in texts]


async def async_embed(texts: list[str]) -> list[list[float]]:
    await asyncio.sleep(0)
    return [vector(t) for t in texts]


MEMORIES = {
    "u1:s1:1": {"role": "user", "content": "I am allergic to peanuts"},
    "u1:s1:2": {"role": "user", "content": "The garage fixed my brakes on Tuesday"},
    "u1:s1:3": {"role": "user", "content": "We walked the mountain trail"},
    "u2:s1:1": {"role": "user", "content": "Tuesday is my day off"},
}


async def filled(memory: MemoryPrimitive) -> MemoryPrimitive:
    for key, value in MEMORIES.items():
        await memory.add(key, value)
    return memory


def keys(hits: Sequence[Any]) -> list[str]:
    return [hit.key for hit in hits]


# -- the embedder contract ------------------------------------------------------------------------


@pytest.mark.parametrize("embed", [Counting(), async_embed], ids=["sync", "async"])
async def test_a_question_finds_a_memory_that_shares_no_word_with_it(embed: Any) -> None:
    """ "snack" finds "peanuts", by meaning; keyword search finds nothing."""
    memory = await filled(MemoryPrimitive(embed=embed, dims=DIMS))
    assert await memory.search("which snack?", mode="keyword") == []
    found = await memory.search_scored("which snack?", limit=1, mode="semantic")
    assert keys(found) == ["u1:s1:1"]
    assert 0 < found[0].score <= 1
    assert keys(await memory.search_scored("which snack?", limit=1)) == ["u1:s1:1"]  # hybrid


async def test_a_wrong_dimension_is_refused_and_nothing_is_stored() -> None:
    """An embedder that returns 3 numbers where 8 were declared: EmbeddingError, no memory."""
    memory = MemoryPrimitive(embed=lambda texts: [[1.0, 2.0, 3.0] for _ in texts], dims=DIMS)
    with pytest.raises(EmbeddingError, match="dims"):
        await memory.add("k", {"content": "hello"})
    assert await memory.get("k") is None
    assert await memory.size() == 0


async def test_an_embedder_error_stores_nothing_and_the_next_add_retries() -> None:
    """The embedder's own error is chained; nothing is half-written; a retry works."""
    calls = 0

    def flaky(texts: list[str]) -> list[list[float]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("embedding API down")
        return [vector(t) for t in texts]

    memory = MemoryPrimitive(embed=flaky)
    with pytest.raises(EmbeddingError) as info:
        await memory.add("u1:s1:1", {"content": "peanuts"})
    assert isinstance(info.value.__cause__, ConnectionError)
    assert await memory.size() == 0
    await memory.add("u1:s1:1", {"content": "peanuts"})
    assert keys(await memory.search_scored("snack", mode="semantic")) == ["u1:s1:1"]


async def test_each_text_is_embedded_once() -> None:
    """The same text added under two keys, and a repeated question, reach the model once each."""
    embed = Counting()
    memory = MemoryPrimitive(embed=embed)
    await memory.add("a", {"content": "peanuts"})
    await memory.add("b", {"content": "peanuts"})
    await memory.search("snack?")
    await memory.search("snack?")
    assert sorted(embed.texts) == ["peanuts", "snack?"]


async def test_metadata_is_not_embedded_and_vector_text_overrides() -> None:
    """The embedded text is the searched text (no role); vector_text replaces it; "" means none."""
    embed = Counting()
    memory = MemoryPrimitive(embed=embed)
    await memory.add("a", {"role": "assistant", "content": "peanuts", "user_id": "u1"})
    await memory.add("b", {"content": "ignored"}, vector_text="mountain trail")
    await memory.add("c", {"content": "no vector"}, vector_text="")
    assert embed.texts == ["peanuts", "mountain trail"]
    assert keys(await memory.search_scored("hike", mode="semantic", limit=5)) == ["b", "a"]


async def test_modes_need_an_embedder_and_bad_arguments_are_named() -> None:
    plain = MemoryPrimitive()
    with pytest.raises(InvalidArgumentError, match="needs an embedder"):
        await plain.search("snack", mode="semantic")
    with pytest.raises(InvalidArgumentError, match="mode"):
        await plain.search("snack", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="dims"):
        MemoryPrimitive(dims=8)
    with pytest.raises(InvalidArgumentError, match="hybrid_weight"):
        MemoryPrimitive(embed=async_embed, hybrid_weight=1.5)
    with pytest.raises(InvalidArgumentError, match="vector_text"):
        await plain.add("k", {"content": "x"}, vector_text="y")


async def test_a_blank_query_lists_the_most_recent_in_every_mode() -> None:
    memory = await filled(MemoryPrimitive(embed=async_embed))
    for mode in ("keyword", "semantic", "hybrid"):
        assert [h.key for h in await memory.search_scored("", limit=2, mode=mode)] == [
            "u2:s1:1",
            "u1:s1:3",
        ]


# -- hybrid laws ----------------------------------------------------------------------------------


async def test_a_pure_keyword_match_and_a_pure_semantic_match_both_surface() -> None:
    """ "Tuesday snack": "Tuesday" matches two memories by word, "snack" one by meaning only."""
    memory = await filled(MemoryPrimitive(embed=async_embed))
    found = set(keys(await memory.search_scored("Tuesday snack", limit=3)))
    assert "u1:s1:1" in found  # by meaning only: no shared word
    assert found & {"u1:s1:2", "u2:s1:1"}  # by word


def hybrid_law(keyword: float, cosine: float, ceiling: float, weight: float) -> float:
    """The documented hybrid score: BM25 as a share of its ceiling, cosine as it is."""
    return (1 - weight) * keyword / ceiling + weight * max(cosine, 0.0)


def ceiling_of(dfs: Sequence[int], n_docs: int) -> float:
    """BM25's ceiling for query terms with these document frequencies (``(k1 + 1) * sum idf``)."""
    return 2.5 * sum(math.log(1 + (n_docs - df + 0.5) / (df + 0.5)) for df in dfs)


def unit(v: Sequence[float]) -> Any:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def with_feedback(question: str, matches: Sequence[str]) -> Any:
    """The question's vector moved 0.3 of the way toward the mean of its two best keyword
    matches' vectors (``matches``: their embedded texts, best first), unit again."""
    q = unit(vector(question))
    if not matches:
        return q
    moved = 0.7 * q + 0.3 * np.mean([unit(vector(t)) for t in matches[:2]], axis=0)
    return moved / np.linalg.norm(moved)


async def test_a_hybrid_score_is_on_a_fixed_scale() -> None:
    """Each hit's hybrid score is (1 - w) * BM25 / ceiling + w * max(cosine, 0), from its own two
    scores and the query's statistics alone: not rescaled by the other hits, so the best hit
    does not always score the same and min_score is a real threshold. The cosine is to the
    question's vector with keyword feedback (moved toward its two best keyword matches)."""
    embedded: list[str] = []

    async def recording(texts: list[str]) -> list[list[float]]:
        embedded.extend(texts)
        return await async_embed(texts)

    memory = await filled(MemoryPrimitive(embed=recording, hybrid_weight=0.4))
    text_of = dict(zip(MEMORIES, embedded, strict=True))  # one text per add, in order
    question = "Tuesday brakes"  # tuesday in 2 of 4 memories, brake in 1
    top = ceiling_of([2, 1], 4)
    kw = {h.key: h.score for h in await memory.search_scored(question, 10, mode="keyword")}
    q = with_feedback(question, [text_of[k] for k in kw])  # kw: best first
    hybrid = await memory.search_scored(question, limit=10)
    assert set(kw) <= {h.key for h in hybrid}
    for hit in hybrid:
        cosine = float(unit(vector(text_of[hit.key])) @ q)
        want = hybrid_law(kw.get(hit.key, 0.0), cosine, top, 0.4)
        assert hit.score == pytest.approx(want, rel=1e-5, abs=1e-6)
        assert 0.0 <= hit.score <= 1.0
    # Min-max gave every query's best hit 1 - w + w = 1 (or 0.5 with one side); not any more.
    bests = {(await memory.search_scored(q, limit=1))[0].score for q in ("Tuesday", question)}
    assert len(bests) == 2
    assert max(bests) < 1.0


async def test_keyword_feedback_moves_the_semantic_side_toward_the_keyword_matches() -> None:
    """A question whose words find a memory lifts, by meaning, memories like that one: "Tuesday
    peanuts" finds the garage memory by word ("Tuesday"), and the feedback from it brings the
    mechanic memory closer on the semantic side than the trail one; a question that matches no
    word is searched as it is (hybrid's semantic part equals semantic search)."""
    memory = MemoryPrimitive(embed=async_embed, hybrid_weight=1.0 - 1e-9)
    await memory.add("u1:s1:1", {"content": "Tuesday the garage called"})
    await memory.add("u1:s1:2", {"content": "brakes and a mechanic"})
    await memory.add("u1:s1:3", {"content": "a trail walk"})
    plain = await memory.search_scored("snack", 3, mode="semantic")
    fused = await memory.search_scored("snack", 3, mode="hybrid")
    assert [(h.key, pytest.approx(h.score, rel=1e-6)) for h in fused] == [
        (h.key, h.score * (1.0 - 1e-9)) for h in plain
    ]
    semantic = await memory.search_scored("Tuesday peanuts", 3, mode="semantic")
    hybrid = await memory.search_scored("Tuesday peanuts", 3, mode="hybrid")
    cos = {h.key: h.score for h in semantic}
    moved = {h.key: h.score for h in hybrid}
    # the keyword match's neighbour in meaning gains, relative to an unrelated memory
    assert moved["u1:s1:2"] - moved["u1:s1:3"] > cos["u1:s1:2"] - cos["u1:s1:3"]


#: Memories and questions of concept words and others, for the hybrid laws.
MEMORY_TEXTS = st.lists(
    st.lists(st.sampled_from([*CONCEPTS, "tuesday", "day", "walked", "fixed"]), min_size=1,
             max_size=6).map(" ".join),
    min_size=1, max_size=12,
)  # fmt: skip
QUESTIONS = st.lists(st.sampled_from([*CONCEPTS, "tuesday", "which"]), min_size=1,
                     max_size=4).map(" ".join)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    texts=MEMORY_TEXTS,
    question=QUESTIONS,
)  # fmt: skip
def test_a_weight_of_zero_is_keyword_search(texts: list[str], question: str) -> None:
    """hybrid_weight=0 ranks exactly as keyword search, scores included."""

    async def run() -> None:
        fused = MemoryPrimitive(embed=async_embed, hybrid_weight=0.0)
        for i, text in enumerate(texts):
            await fused.add(f"u1:s1:{i}", {"content": text})
        hybrid = await fused.search_scored(question, limit=10, mode="hybrid")
        keyword = await fused.search_scored(question, limit=10, mode="keyword")
        assert hybrid == keyword

    asyncio.run(run())


@settings(max_examples=40, deadline=None)
@given(
    texts=MEMORY_TEXTS,
    question=QUESTIONS,
    weight=st.sampled_from([0.0, 0.2, 0.4, 0.75, 1.0]),
)  # fmt: skip
def test_a_search_s_hybrid_weight_ranks_as_a_memory_made_with_it(
    texts: list[str], question: str, weight: float
) -> None:
    """``search_scored(..., hybrid_weight=w)`` ranks and scores exactly as a memory made with
    ``hybrid_weight=w``, and leaves the memory's own weight for the next search."""

    async def run() -> None:
        default = MemoryPrimitive(embed=async_embed)
        made = MemoryPrimitive(embed=async_embed, hybrid_weight=weight)
        for i, text in enumerate(texts):
            for memory in (default, made):
                await memory.add(f"u1:s1:{i}", {"content": text})
        before = await default.search_scored(question, limit=10)
        per_call = await default.search_scored(question, limit=10, hybrid_weight=weight)
        assert per_call == await made.search_scored(question, limit=10)
        assert await default.search_scored(question, limit=10) == before
        items = await default.search_items(question, limit=10, hybrid_weight=weight)
        assert items == [(hit.key, hit.value) for hit in per_call]

    asyncio.run(run())


async def test_a_search_s_hybrid_weight_is_checked_and_a_recall_step_uses_it() -> None:
    """A bad per-search weight, or one given to a keyword or semantic search (or to a memory
    with no embedder), is named before anything is searched; ``memory.recall(...,
    hybrid_weight=w)`` searches with it."""
    memory = await filled(MemoryPrimitive(embed=async_embed))
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(InvalidArgumentError, match="hybrid_weight"):
            await memory.search("snack", hybrid_weight=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="hybrid_weight"):
            memory.recall("snack", hybrid_weight=bad)  # type: ignore[arg-type]
    for mode in ("keyword", "semantic"):
        with pytest.raises(InvalidArgumentError, match=f"hybrid_weight.*{mode}"):
            await memory.search("snack", mode=mode, hybrid_weight=0.5)  # type: ignore[arg-type]
    plain = MemoryPrimitive()  # no embedder: its searches are keyword searches
    with pytest.raises(InvalidArgumentError, match="hybrid_weight needs an embedder"):
        await plain.search("snack", hybrid_weight=0.5)
    with pytest.raises(InvalidArgumentError, match="hybrid_weight needs an embedder"):
        plain.recall("snack", hybrid_weight=0.5)
    question = "Tuesday snack"  # "Tuesday" by word, "snack" by meaning only
    step = memory.recall(question, into="found", limit=4, hybrid_weight=0.9)
    context = WorkflowContext()
    await step.execute("input", context)
    assert context.state["found"] == await memory.search(question, 4, hybrid_weight=0.9)
    assert keys(await memory.search_scored(question, 4, hybrid_weight=0.9)) != keys(
        await memory.search_scored(question, 4, hybrid_weight=0.1)
    )  # the weight reached the ranking


async def test_numpy_numbers_are_numbers() -> None:
    """A limit, weight, score or ttl computed with numpy (``np.int64``, ``np.float32``) is taken
    as the number it is; a numpy bool is not a number, as a bool is not."""
    memory = await filled(MemoryPrimitive(embed=async_embed))
    await memory.add("u1:s1:9", {"content": "peanut butter"}, ttl=np.float32(60))
    found = await memory.search_scored(
        "peanuts", np.int64(2), hybrid_weight=np.float32(0.5), min_score=np.float64(0.0)
    )  # type: ignore[arg-type]
    assert found == await memory.search_scored("peanuts", 2, hybrid_weight=0.5, min_score=0.0)
    assert len(found) == 2
    with pytest.raises(InvalidArgumentError, match="hybrid_weight"):
        await memory.search("peanuts", hybrid_weight=np.bool_(True))  # type: ignore[arg-type]


# -- Redis: outages and parity --------------------------------------------------------------------


@pytest.mark.redis
async def test_semantic_search_survives_an_outage_and_replay_never_re_embeds(
    redis_server_factory: Factory,
) -> None:
    """During an outage, search by meaning runs on the in-process copy; the journal carries each
    vector, so another process later finds the outage's memory without embedding it again."""
    server = redis_server_factory()
    ns = namespace()
    writer_embed = Counting()
    memory = fast_recovery(server.url, ns, embed=writer_embed)
    await memory.add("u1:s1:1", {"content": "The garage fixed my brakes"})
    server.kill()
    await memory.add("u1:s1:2", {"content": "I am allergic to peanuts"})
    assert memory.get_backend_info()["degraded"] is True
    found = await memory.search_scored("which snack?", limit=1, mode="semantic")
    assert keys(found) == ["u1:s1:2"]
    server.start()

    await replayed(memory)
    reader_embed = Counting()
    reader = MemoryPrimitive(server.url, namespace=ns, embed=reader_embed)
    found = await reader.search_scored("which snack?", limit=1, mode="semantic")
    assert keys(found) == ["u1:s1:2"]
    assert reader_embed.texts == ["which snack?"]  # only the question: vectors came from Redis
    assert sorted(writer_embed.texts) == sorted(
        ["The garage fixed my brakes", "I am allergic to peanuts", "which snack?"]
    )
    await reader.aclose()
    await memory.clear()
    await memory.aclose()


@pytest.mark.redis
async def test_a_fresh_replica_reading_several_vectors_first_does_not_warn(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh process whose first search is blank reads vectors before it knows their size:
    a memory's several vectors, end to end, looked like one of another size, and a warning
    said they could not be indexed, though the replica starts over once the size is known
    (review R20). No warning; the memory is found by meaning."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.01, 0.01, 0.01] if "car" in t else [0.01, 1.0, 0.01, 0.01] for t in texts]

    ns = namespace()
    writer = MemoryPrimitive(redis_server.url, namespace=ns, embed=embed)
    await writer.add("u1:s1:one", {"content": "single"}, vector_text="hike")
    await writer.add("u1:s1:doc", {"content": "a note"}, vector_text=["filler"] * 255 + ["car"])
    fresh = MemoryPrimitive(redis_server.url, namespace=ns, embed=embed)
    assert [key for key, _ in await fresh.search_items("", 5)] == ["u1:s1:doc", "u1:s1:one"]
    assert keys(await fresh.search_scored("car", 1, mode="semantic")) == ["u1:s1:doc"]
    assert not [r for r in caplog.records if "could not be indexed" in r.getMessage()]
    await writer.clear()
    for m in (writer, fresh):
        await m.aclose()


@pytest.mark.redis
async def test_a_namespace_written_with_another_embedder_stays_searchable_by_keyword(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Vectors of another dimension are skipped (with one warning), not an error."""
    ns = namespace()
    # (Written by a version before the embedder record: now another embedder is refused.)
    old = MemoryPrimitive(redis_server.url, namespace=ns, embed=lambda t: [[1.0, 2.0]] * len(t))
    before_the_embedder_record(old)
    await old.add("u1:s1:1", {"content": "peanuts"})
    new = MemoryPrimitive(redis_server.url, namespace=ns, embed=async_embed)
    await new.add("u1:s1:2", {"content": "cashew"})
    assert keys(await new.search_scored("peanuts", mode="keyword")) == ["u1:s1:1"]
    assert keys(await new.search_scored("snack", mode="semantic")) == ["u1:s1:2"]
    warned = [r.getMessage() for r in caplog.records if "could not be indexed" in r.getMessage()]
    assert warned
    assert all("key 'u1:s1:" in message for message in warned)  # it names the memory
    assert new.using_redis
    await new.clear()
    for m in (old, new):
        await m.aclose()


WORDS = [*CONCEPTS, "tuesday", "day", "walked", "fixed", "which", "the"]


@pytest.mark.redis
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
        min_size=1, max_size=15,
    ),
    questions=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
        min_size=1, max_size=4,
    ),
    scoped=st.booleans(),
)  # fmt: skip
def test_redis_ranks_and_scores_exactly_as_in_process(
    redis_server: RedisServer, texts: list[str], questions: list[str], scoped: bool
) -> None:
    """Same memories, same embedder: Redis (a reader in another MemoryPrimitive, so through the
    replica) returns the same keys in the same order with the same scores, in every mode."""

    async def run() -> None:
        ns = namespace()
        local = MemoryPrimitive(embed=async_embed)
        writer = MemoryPrimitive(redis_server.url, namespace=ns, embed=async_embed)
        for i, text in enumerate(texts):
            key = f"u{i % 2}:s1:{i}"
            await local.add(key, {"content": text})
            await writer.add(key, {"content": text})
        reader = MemoryPrimitive(redis_server.url, namespace=ns, embed=async_embed)
        scope = "u1" if scoped else None
        for question in questions:
            for mode in ("keyword", "semantic", "hybrid"):
                want = await local.search_scored(question, limit=5, scope=scope, mode=mode)
                got = await reader.search_scored(question, limit=5, scope=scope, mode=mode)
                assert [(h.key, h.score) for h in got] == [(h.key, h.score) for h in want]
        await writer.clear()
        for m in (local, writer, reader):
            await m.aclose()

    asyncio.run(run())


def test_vectors_survive_the_journal_as_numpy() -> None:
    """A journalled write's estimated size counts its vector (so the byte cap means memory)."""
    from tta_dev_primitives.stores._base import Document, Put
    from tta_dev_primitives.stores._recovery import Journalled

    plain = Journalled(Put("k", "{}", None, Document({"a": 1})), None)
    with_vector = Journalled(
        Put("k", "{}", None, Document({"a": 1}, np.ones(384, dtype=np.float32))), None
    )
    assert with_vector.size - plain.size >= 384 * 4


async def test_embedding_calls_show_as_spans_under_the_operation() -> None:
    """memory.embed nests under memory.add and memory.search; the search says its mode."""
    from tta_dev_primitives.testing import capture_spans

    with capture_spans() as spans:
        memory = MemoryPrimitive(embed=async_embed)
        await memory.add("u1:s1:1", {"content": "peanuts"})
        await memory.search("snack?")
    embeds = spans.named("memory.embed")
    assert [
        s in spans.children(spans.one(op))
        for s, op in zip(embeds, ["memory.add", "memory.search"], strict=True)
    ] == [True, True]
    assert embeds[0].attributes["embed.model"].endswith("async_embed")
    assert spans.one("memory.search").attributes["memory.search_mode"] == "hybrid"


@pytest.mark.redis
async def test_search_by_meaning_on_a_redis_cluster(redis_cluster: Any) -> None:
    """Vectors spread over the shards with their memories; a reader finds them by meaning."""
    ns = namespace()
    writer = await filled(MemoryPrimitive(redis_cluster.url, namespace=ns, embed=async_embed))
    reader = MemoryPrimitive(redis_cluster.url, namespace=ns, embed=async_embed)
    assert keys(await reader.search_scored("which snack?", limit=1)) == ["u1:s1:1"]
    assert keys(await reader.search_scored("hike", limit=1, scope="u1", mode="semantic")) == [
        "u1:s1:3"
    ]
    assert reader.using_redis
    await writer.clear()
    for m in (writer, reader):
        await m.aclose()


async def test_too_many_texts_for_one_memory_are_refused_before_any_model_call() -> None:
    embed = Counting()
    memory = MemoryPrimitive(embed=embed)
    with pytest.raises(InvalidArgumentError, match="at most 256"):
        await memory.add("k", {"content": "x"}, vector_text=["peanuts"] * 257)
    assert embed.texts == []
    assert await memory.size() == 0
    await memory.add("k", {"content": "x"}, vector_text=["peanuts", "mountain trail"])
    assert keys(await memory.search_scored("hike", mode="semantic")) == ["k"]


@pytest.mark.redis
async def test_a_stored_vector_another_size_cannot_split_into_is_named_when_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 3-number vector read by a process embedding in 2 is skipped with a warning naming the
    memory, and the memory stays found by keyword."""
    ns = namespace()
    writer = MemoryPrimitive(
        redis_server.url, namespace=ns, embed=lambda t: [[1.0, 2.0, 3.0]] * len(t)
    )
    before_the_embedder_record(writer)  # (a version before the record: see the test above)
    await writer.add("u7:s1:odd", {"content": "pistachio"})
    reader = MemoryPrimitive(redis_server.url, namespace=ns, embed=lambda t: [[1.0, 0.5]] * len(t))
    assert keys(await reader.search_scored("pistachio", mode="keyword")) == ["u7:s1:odd"]
    assert keys(await reader.search_scored("a nut", mode="semantic")) == []
    warned = [r.getMessage() for r in caplog.records if "could not be indexed" in r.getMessage()]
    assert any("key 'u7:s1:odd'" in message for message in warned), warned
    await writer.clear()
    for m in (writer, reader):
        await m.aclose()


async def test_tied_best_keyword_matches_score_the_same_whatever_order_they_were_written() -> None:
    """Three memories with one text (one keyword score) and different vectors: keyword
    feedback takes two of them. Written in another order (Redis applies concurrent adds in its
    own order, a cluster's replay partition by partition), every hybrid score changed (review
    R25): the tied matches are now taken in key order, so the scores are the same."""
    meanings = {"u1:s1:a": "peanut snack", "u1:s1:b": "mountain trail", "u1:s1:c": "garage car"}

    async def scores(order: list[str]) -> dict[str, float]:
        memory = MemoryPrimitive(embed=Counting(), dims=DIMS)
        for key in order:
            await memory.add(key, {"content": "my favourite note"}, vector_text=meanings[key])
        await memory.add("u1:s1:z", {"content": "a plain note"}, vector_text="allergic avoid")
        hits = await memory.search_scored("favourite note", limit=10, mode="hybrid")
        await memory.aclose()
        return {hit.key: hit.score for hit in hits}

    first = await scores(["u1:s1:a", "u1:s1:b", "u1:s1:c"])
    assert len(first) == 4
    assert await scores(["u1:s1:c", "u1:s1:b", "u1:s1:a"]) == first
    assert await scores(["u1:s1:b", "u1:s1:a", "u1:s1:c"]) == first
