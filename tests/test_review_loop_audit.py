"""Work that held the event loop for long at hostile but realistic sizes, now done on a worker
thread or in slices (the loop-lag figures are in the commits that fixed each). Asserted by where
the work runs, never by timing: a task on the same loop gets turns while it runs."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import namespace
from redis_server import RedisServer
from tta_dev_primitives import CachePrimitive, MemoryPrimitive
from tta_dev_primitives.caching import _primitive as cache_module
from tta_dev_primitives.core import WorkflowContext
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import RENUMBER_FROM, SearchIndex
from tta_dev_primitives.search._vector_index import ANN_BATCH
from tta_dev_primitives.stores import _journal_file, _outbox
from tta_dev_primitives.stores import _local as local_module
from tta_dev_primitives.stores._base import Document, Put
from tta_dev_primitives.stores._local import LocalStore

DOWN = "redis://127.0.0.1:1/0"  # nothing listens: the journal's writes stay in it


class Ticker:
    """A task on the loop noting, at each turn it gets, how far ``progress()`` has come."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.seen: list[Any] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.seen.append(self.progress())
            await asyncio.sleep(0)

    def stop(self) -> list[Any]:
        self.task.cancel()
        return self.seen


async def test_a_large_restored_journal_is_taken_in_slices_and_encoded_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 journalled writes left by a crashed process held the loop 2.8 s at the next
    process's first call: each record encoded again for its size, then applied, in one go."""
    count = 1000  # a few slices
    path = tmp_path / "memory.journal"
    lines = [_journal_file._header("ns")]
    for i in range(count):
        put = Put(f"u1:s1:{i}", f'{{"content":"note {i}"}}', None, Document({"note": 1}, None),
                  f"{1000 + i:016x}0badcafe")  # fmt: skip
        lines.append(_journal_file.encode(_journal_file.Record(i + 1, put, None)))
    path.write_bytes(b"".join(lines))
    loop_thread = threading.get_ident()
    encoded_on_loop: list[bool] = []
    encode = _journal_file.encode

    def recording(record: _journal_file.Record) -> bytes:
        encoded_on_loop.append(threading.get_ident() == loop_thread)
        return encode(record)

    monkeypatch.setattr(_journal_file, "encode", recording)
    monkeypatch.setattr(_outbox, "encode", recording, raising=False)  # (where it was used)
    applied = 0
    put = LocalStore.put

    def counting(self: LocalStore, *args: Any, **kwargs: Any) -> list[str]:
        nonlocal applied
        applied += 1
        return put(self, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "put", counting)
    memory = MemoryPrimitive(DOWN, namespace="ns", journal_path=str(path), max_size=10_000,
                             redis_timeout=0.5)  # fmt: skip
    try:
        ticker = Ticker(lambda: applied)
        assert await memory.get(f"u1:s1:{count - 1}") == {"content": f"note {count - 1}"}
        seen = ticker.stop()
    finally:
        await memory.aclose()
    assert applied == count
    assert encoded_on_loop
    assert not any(encoded_on_loop)
    # The loop served other tasks while the writes were applied, not only before and after.
    assert any(0 < n < count for n in seen), seen


@pytest.mark.redis
async def test_a_replica_that_starts_over_clears_its_index_at_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleared namespace (by this process or another) made each replica take its memories
    out of the index one by one, renumbering it on the way: 1.5 s on the loop at 50,000."""
    ns = namespace()
    # About the index, not timeouts: a busy machine's slow reply must not be an outage here.
    writer = MemoryPrimitive(
        redis_server.url, namespace=ns, search_engine="replica", redis_timeout=10
    )
    reader = MemoryPrimitive(
        redis_server.url, namespace=ns, search_engine="replica", redis_timeout=10
    )
    removed = 0
    remove = SearchIndex.remove

    def counting(self: SearchIndex, key: str) -> bool:
        nonlocal removed
        removed += 1
        return remove(self, key)

    try:
        await asyncio.gather(*(writer.add(f"u1:s1:{i}", {"content": f"note {i}"})
                               for i in range(300)))  # fmt: skip
        assert await writer.flush()  # all in Redis (replayed, had the burst met an outage)
        assert len(await reader.search("note", limit=500)) == 300
        assert len(await writer.search("note", limit=500)) == 300
        monkeypatch.setattr(SearchIndex, "remove", counting)
        await writer.clear()  # the writer's own replica: cleared()
        await writer.add("u1:s1:new", {"content": "note new"})
        # the reader's: another process cleared, its next sync starts the partition over
        assert await reader.search("note", limit=500) == [{"content": "note new"}]
        assert await writer.search("note", limit=500) == [{"content": "note new"}]
    finally:
        await writer.aclose()
        await reader.aclose()
    assert removed < 10


class _RecordingJson:
    """``json`` for the cache's module, noting for each large document whether the loop's
    thread encoded or decoded it."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.large: list[tuple[str, bool]] = []

    def _note(self, what: str, size: int) -> None:
        if size > 100_000:
            self.large.append((what, threading.get_ident() == self.loop_thread))

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        text = json.dumps(obj, **kwargs)
        self._note("dumps", len(text))
        return text

    def loads(self, text: str | bytes) -> Any:
        self._note("loads", len(text))
        return json.loads(text)


@pytest.mark.redis
async def test_a_shared_cache_encodes_and_decodes_a_large_output_off_the_loop(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An 8 MB text output held the loop 50-65 ms on a miss (encoded, checked, decoded again
    for the caller's copy). A short output stays on the loop (a thread's hop costs more)."""
    recording = _RecordingJson(threading.get_ident())
    monkeypatch.setattr(cache_module, "json", recording)
    outputs = {"big": "garden tomato " * 20_000, "small": "a short answer"}

    async def step(name: str, ctx: WorkflowContext) -> str:
        return outputs[name]

    cache = CachePrimitive(step, lambda name, ctx: name, backend=redis_server.url,
                           namespace=namespace())  # fmt: skip
    try:
        for _ in range(2):  # a miss, then a hit
            assert await cache.execute("big", WorkflowContext()) == outputs["big"]
            assert await cache.execute("small", WorkflowContext()) == outputs["small"]
    finally:
        await cache.aclose()
    assert [what for what, _ in recording.large] == ["dumps", "loads", "loads"]
    assert not any(on_loop for _, on_loop in recording.large), recording.large


@pytest.mark.parametrize(
    ("in_order", "threshold"), [(True, 256), (False, 256), (False, 4 * (RENUMBER_FROM + 1900))]
)
def test_renumbering_an_index_keeps_or_restarts_the_hnsw_graph(
    in_order: bool, threshold: int
) -> None:
    """Removing most of a large index renumbers it inside one ``remove`` call. Re-adding every
    live document there fed each vector to the graph again: 38 s on the loop at 100,000 vectors
    with two thirds removed. Now the numbers are remapped and the graph keeps its vectors under
    their new numbers; only when the documents change order (a replica's out-of-order
    recencies) while many rows have yet to join the graph does it start over, and catch up as
    vectors are added. Either way searches give the exact answers, and later adds feed it."""
    pytest.importorskip("usearch")
    np = pytest.importorskip("numpy")
    count = RENUMBER_FROM + 2000
    index = SearchIndex(ann_threshold=threshold)
    vectors = np.random.default_rng(7).standard_normal((count + 600, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(count):
        recency = i if in_order else (i ^ 1)  # neighbours swapped: not in write order
        index.add(f"u{i % 3}:s:{i}", {"note": 1}, recency=recency, vector=vectors[i])
    before = index.stats().graph
    assert before
    behind = before < count - 2 * ANN_BATCH  # the graph started late: many rows not in it
    for i in range(count):
        if i % 3:
            index.remove(f"u{i % 3}:s:{i}")
    stats = index.stats()
    assert stats.numbers < count  # renumbered
    if behind:
        assert not stats.graph  # started over, not rebuilt inside remove()
    else:
        # Two thirds removed: the graph started over once it had lost half of what it held
        # (links through removed vectors lead astray, review R25) and grows back a batch at a
        # time as removals earn it rows; renumbering kept what it had grown.
        assert stats.graph is not None, stats
        assert 0 < stats.graph <= stats.vectors, stats
    live = [i for i in range(count) if i % 3 == 0]

    def check() -> None:
        for probe in range(0, count, 97):
            query = Query((), vector=vectors[probe], mode="semantic")
            found = [key for key, _ in index.search_scored(query, 5)]
            sims = vectors[live] @ vectors[probe]
            exact = [f"u0:s:{live[j]}" for j in np.argsort(-sims, kind="stable")[:5]]
            assert found == exact, probe

    check()
    for i in range(count, count + 600):  # later adds feed the graph
        index.add(f"u0:s:{i}", {"note": 1}, vector=vectors[i])
        live.append(i)
    assert index.stats().graph or 4 * index.stats().vectors < threshold  # (too few to start)
    check()


async def test_a_large_checkpoint_value_is_decoded_off_the_loop() -> None:
    """A thread's state of 5,000 messages (2.3 MB) took 100-150 ms to decode, on the loop at
    each aget_tuple (59-105 ms of lateness measured) and at each checkpoint of alist."""
    pytest.importorskip("langgraph")
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

    loop_thread = threading.get_ident()
    seen: list[tuple[int, bool]] = []  # (bytes decoded, on the loop's thread)

    class Recording(JsonPlusSerializer):
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            seen.append((len(data[1]), threading.get_ident() == loop_thread))
            return super().loads_typed(data)

    saver = MemoryCheckpointSaver(MemoryPrimitive(), serde=Recording())
    messages = [(HumanMessage if i % 2 else AIMessage)(content=f"turn {i} " + "word " * 60)
                for i in range(500)]  # fmt: skip
    config: Any = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": messages}
    checkpoint["channel_versions"] = {"messages": "1"}
    await saver.aput(config, checkpoint, {"step": 0}, {"messages": "1"})
    found = await saver.aget_tuple(config)
    assert found is not None
    assert found.checkpoint["channel_values"]["messages"] == messages
    large = [on_loop for size, on_loop in seen if size > 100_000]
    assert large == [False]
    assert any(on_loop for size, on_loop in seen if size < 1000)  # small ones stay on the loop
    await saver.aclose()


async def test_a_scope_is_listed_from_its_own_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process, each page of list_memories (and of forget) walked every memory in the store:
    54-70 ms of the loop per page at 100,000, and forgetting a user with 10,000 of them held
    the loop up to 307 ms (20 pages)."""
    memory = MemoryPrimitive(max_size=100_000)
    for i in range(1200):
        await memory.add(f"u1:s{i % 3}:{i}", {"content": f"note {i}"})
    for i in range(300):
        await memory.add(f"u2:s1:{i}", {"content": f"other {i}"})
    walked = 0
    in_scope = local_module.in_scope

    def counting(key: str, scope: str | None) -> bool:
        nonlocal walked
        walked += 1
        return in_scope(key, scope)

    monkeypatch.setattr(local_module, "in_scope", counting)
    page = await memory.list_memories("u2", limit=10)
    assert [value for _, value in page.items] == [{"content": f"other {i}"}
                                                  for i in range(299, 289, -1)]  # fmt: skip
    assert (await memory.list_memories("u1:s1:4", limit=10)).items == [
        ("u1:s1:4", {"content": "note 4"})
    ]
    assert walked == 0  # no memory outside the scope examined
    assert await memory.forget("u1") == 1200
    assert walked == 0
    assert await memory.size() == 300


async def test_a_long_chat_history_is_rebuilt_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000 messages are 30-110 ms of pydantic validation; a short history stays on the loop."""
    from langchain_core.messages import AIMessage, HumanMessage

    from tta_dev_primitives.integrations import langchain as langchain_module
    from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

    loop_thread = threading.get_ident()
    built: list[tuple[int, bool]] = []  # (messages, on the loop's thread)
    rebuild = langchain_module.messages_from_dict

    def recording(messages: Any) -> Any:
        built.append((len(messages), threading.get_ident() == loop_thread))
        return rebuild(messages)

    monkeypatch.setattr(langchain_module, "messages_from_dict", recording)
    memory = MemoryPrimitive(max_size=10_000)
    long, short = (
        MemoryChatMessageHistory(memory, "u1:s1"),
        MemoryChatMessageHistory(memory, "u1:s2"),
    )
    said = [(HumanMessage if i % 2 else AIMessage)(content=f"turn {i}") for i in range(600)]
    await long.aadd_messages(said)
    await short.aadd_messages(said[:3])
    assert await long.aget_messages() == said
    assert await short.aget_messages() == said[:3]
    assert built == [(600, False), (3, True)]


def test_a_new_word_joins_the_prefix_vocabulary_without_rebuilding_it() -> None:
    """A prefix search after any add bringing a new word (an id, a name: most chat turns)
    rebuilt the sorted vocabulary from every term: 35-56 ms per search at 50,000 memories. New
    words are inserted in place now (many of them still rebuild it); the completions stay
    exact through both, a removal and a re-add. (Through public methods only: that it is
    not rebuilt is a cost, measured in the commit, not asserted.)"""
    from tta_dev_primitives.search import _term_index

    terms = _term_index.TermIndex()
    for docno in range(2000):
        terms.add(docno, f"u1:s1:{docno}", {f"order{docno}": 1, "garden": 1})
    assert terms.expand("order199") == ["order199", *(f"order199{i}" for i in range(10))]
    terms.add(2000, "u1:s1:2000", {"order1995x": 1, "garden": 1})
    terms.remove(1994, "u1:s1:1994", ("order1994", "garden"), 2)
    terms.add(2001, "u1:s1:2001", {"order1994": 1})  # removed, then back
    after = ["order199", *(f"order199{i}" for i in range(6)), "order1995x",
             *(f"order199{i}" for i in range(6, 10))]  # fmt: skip
    assert terms.expand("order199") == after
    for docno in range(2002, 2002 + 300):  # more new words than are inserted in place
        terms.add(docno, f"u1:s1:{docno}", {f"order1993y{docno}": 1})
    assert terms.expand("order1993y") == sorted(f"order1993y{d}" for d in range(2002, 2302))[:256]


async def test_reading_every_in_process_memory_gives_the_loop_turns() -> None:
    """items() in process never waited: an export or LangGraph's list_namespaces of 50,000
    memories held the loop for the whole walk (230-300 ms)."""
    memory = MemoryPrimitive(max_size=10_000)
    for i in range(2000):
        await memory.add(f"u{i % 7}:s1:{i}", {"content": f"note {i}"})
    read = 0
    ticker = Ticker(lambda: read)
    async for _ in memory.items():
        read += 1
    seen = ticker.stop()
    assert read == 2000
    assert any(0 < n < 2000 for n in seen), seen


@pytest.mark.redis
async def test_a_replica_s_first_load_gives_the_loop_turns_within_a_page(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's first load of 50,000 memories held the loop 50-190 ms per page of 1,000
    (indexing them), then 340 ms judging the in-process copies of all 50,000 in one step."""
    ns = namespace()
    # About turns, not timeouts: on a busy machine a 1 s default cut off a reply of the burst
    # below, the writer journalled it, and the reader read Redis before the replay landed.
    writer = MemoryPrimitive(
        redis_server.url, namespace=ns, search_engine="replica", redis_timeout=10
    )
    reader = MemoryPrimitive(
        redis_server.url, namespace=ns, search_engine="replica", redis_timeout=10
    )
    count = 900  # one page (PAGE_COUNT), past a slice of each
    indexed = judged = 0
    add, get = SearchIndex.add, LocalStore.get

    def indexing(self: SearchIndex, *args: Any, **kwargs: Any) -> None:
        nonlocal indexed
        indexed += 1
        add(self, *args, **kwargs)

    def judging(self: LocalStore, key: str) -> object | None:
        nonlocal judged
        judged += 1
        return get(self, key)

    try:
        await asyncio.gather(*(writer.add(f"u1:s1:{i}", {"content": f"note {i}"})
                               for i in range(count)))  # fmt: skip
        assert await writer.flush()  # all in Redis (replayed, had the burst met an outage)
        monkeypatch.setattr(SearchIndex, "add", indexing)
        monkeypatch.setattr(LocalStore, "get", judging)
        ticker = Ticker(lambda: (indexed, judged))
        assert len(await reader.search("note", limit=1000)) == count
        seen = ticker.stop()
    finally:
        await writer.aclose()
        await reader.aclose()
    assert indexed >= count
    assert judged >= count
    assert any(0 < i < count for i, _ in seen), seen  # turns while a page was indexed
    assert any(0 < j < count for _, j in seen), seen  # and while the copies were judged


@pytest.mark.redis
async def test_a_large_query_engine_reply_is_decoded_off_the_loop(
    redis_query_engine: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Query Engine search of limit 10,000 (40,000 candidate rows) decoded the reply on the
    loop: 370-465 ms. A usual search's few rows stay on the loop."""
    from tta_dev_primitives.stores._redis import keywords, replies

    loop_thread = threading.get_ident()
    decoded: list[tuple[int, bool]] = []  # (rows, on the loop's thread)
    rows, rows_of = replies.rows, getattr(keywords, "_rows", None)

    def recording(reply: Any, *, scores: bool) -> Any:
        found = rows(reply, scores=scores)
        decoded.append((len(found), threading.get_ident() == loop_thread))
        return found

    def recording_rows(found: Any, terms: Any) -> Any:
        decoded.append((-len(found), threading.get_ident() == loop_thread))
        assert rows_of is not None
        return rows_of(found, terms)

    # About where a reply is decoded, not timeouts: on a busy machine a 1 s default cut off a
    # reply of the burst below, and the search ran on the in-process copy (1,000 of 1,200).
    memory = MemoryPrimitive(
        redis_query_engine.url, namespace=namespace(), search_engine="redis", redis_timeout=10
    )
    try:
        await asyncio.gather(*(memory.add(f"u1:s1:{i}", {"content": f"note {i}"})
                               for i in range(1200)))  # fmt: skip
        assert await memory.flush()  # all in Redis (replayed, had the burst met an outage)
        monkeypatch.setattr(replies, "rows", recording)
        monkeypatch.setattr(keywords, "_rows", recording_rows, raising=False)
        assert len(await memory.search("note", limit=10)) == 10
        small = list(decoded)
        decoded.clear()
        assert len(await memory.search("note", limit=1200)) == 1200
    finally:
        await memory.aclose()
    assert small
    assert all(on_loop for _, on_loop in small)
    assert any(abs(n) >= 1200 for n, _ in decoded)
    assert not any(on_loop for n, on_loop in decoded if abs(n) >= 1200), decoded


def test_the_hnsw_graph_takes_at_most_32_rows_per_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """An add that hands the graph its batch pays for the whole batch on the loop: 64 rows at
    384 dims were 43-96 ms once the graph held 80,000 vectors (p99 of adds 53 ms)."""
    usearch_index = pytest.importorskip("usearch.index")
    np = pytest.importorskip("numpy")
    sizes: list[int] = []
    add = usearch_index.Index.add

    def recording(self: Any, keys: Any, vectors: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(1 if np.isscalar(keys) else len(keys))
        return add(self, keys, vectors, *args, **kwargs)

    monkeypatch.setattr(usearch_index.Index, "add", recording)
    index = SearchIndex(ann_threshold=256)
    vectors = np.random.default_rng(3).standard_normal((1500, 8)).astype(np.float32)
    for i, vector in enumerate(vectors):
        index.add(f"u1:s1:{i}", {"note": 1}, vector=vector)
    assert index.stats().graph
    assert sizes
    assert max(sizes) <= 32, sizes
