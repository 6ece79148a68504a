"""Vectors in the search index: exact cosine ranking, hybrid laws, alignment through renumbering."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._vector_index import ANN_BATCH, VECTOR_BLOCK

DIM = 8
KEYS = [f"u{u}:s{s}:{k}" for u in (1, 2, 10) for s in (1, 2) for k in "abc"] + ["u1:s1", "solo"]
SCOPES = [None, "u1", "u1:s1", "u1:s1:", "u10", "u2:s2", "solo", "nobody"]
WORDS = ["alpha", "beta", "gamma", "delta"]

# Small integer components: exact in float32, so ties are real ties and brute force agrees.
vectors = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM).filter(any)


def unit(v: Any) -> Any:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def in_scope(key: str, scope: str | None) -> bool:
    """The index takes a scope normalized already (``check_scope``) and matches it as it is:
    ``"u1:s1:"`` here is the scope of keys ``u1:s1:`` and ``u1:s1::...``, not ``"u1:s1"``."""
    return scope is None or key == scope or key.startswith(scope + ":")


def brute(model: dict[str, tuple[int, Any]], q: Any, limit: int, scope: str | None) -> list[str]:
    """Cosine, ties newest first, over the model's documents with vectors."""
    qn = unit(q)
    scored = [
        (float(unit(v) @ qn), rec, key)
        for key, (rec, v) in model.items()
        if v is not None and in_scope(key, scope)
    ]
    scored.sort(key=lambda t: (-t[0], -t[1]))
    return [key for _, _, key in scored[:limit]]


def semantic(q: Any, **kw: Any) -> Query:
    return Query((), vector=np.asarray(q, dtype=np.float32), mode="semantic", **kw)


def test_dims_mismatch_names_both() -> None:
    """A vector or query of another dimension is refused with both sizes named, and not stored."""
    index = SearchIndex()
    index.add("a", {"x": 1}, vector=np.ones(4, dtype=np.float32))
    with pytest.raises(InvalidArgumentError, match=r"3 dimensions.*4-dimensional"):
        index.add("b", {"x": 1}, vector=np.ones(3, dtype=np.float32))
    with pytest.raises(InvalidArgumentError, match=r"5 dimensions.*4-dimensional"):
        index.search(semantic(np.ones(5)), 3)
    assert "b" not in index.search(Query(("x",)), 5)  # the refused add changed nothing


@pytest.mark.parametrize("bad", [np.zeros(4), np.array([1.0, np.nan, 0, 0]), np.ones((2, 2))])
def test_bad_vectors_refused(bad: Any) -> None:
    """Zero, NaN and misshapen vectors are refused; a refused update keeps the old entry."""
    index = SearchIndex()
    index.add("a", {"x": 1}, vector=np.ones(4, dtype=np.float32))
    with pytest.raises(InvalidArgumentError):
        index.add("a", {"y": 1}, vector=bad)
    assert index.search(Query(("x",)), 5) == ["a"]  # the old entry survives a refused update
    with pytest.raises(InvalidArgumentError):
        index.search(semantic(bad), 3)


def test_unnormalised_vectors_are_normalised() -> None:
    """A vector is stored as its unit vector, so its cosine to a parallel query is 1."""
    index = SearchIndex()
    index.add("a", {}, vector=np.array([3.0, 4.0], dtype=np.float32))
    assert np.allclose(index.vector("a"), [0.6, 0.8])
    [(key, score)] = index.search_scored(semantic([6.0, 8.0]), 1)
    assert key == "a"
    assert score == pytest.approx(1.0, abs=1e-6)


def test_query_validation() -> None:
    """A semantic query needs a vector, and a hybrid weight must lie in 0..1."""
    with pytest.raises(InvalidArgumentError):
        Query(("x",), mode="semantic")
    with pytest.raises(InvalidArgumentError):
        Query(("x",), vector=np.ones(2), mode="hybrid", weight=1.5)


def test_documents_without_vectors_are_keyword_only() -> None:
    """A document added without a vector is found by keyword and never by meaning."""
    index = SearchIndex()
    index.add("plain", {"alpha": 1})
    index.add("vec", {"beta": 1}, vector=np.ones(2, dtype=np.float32))
    assert index.search(semantic(np.ones(2)), 5) == ["vec"]
    assert index.search(Query(("alpha",)), 5) == ["plain"]


def test_pure_keyword_and_pure_semantic_match_both_surface_in_hybrid() -> None:
    """Hybrid keeps a keyword-only match and a meaning-only match, with either fusion."""
    index = SearchIndex()
    index.add("words", {"alpha": 2})  # keyword only
    index.add("meaning", {"zeta": 1}, vector=np.array([1.0, 0.0], dtype=np.float32))
    index.add("far", {"zeta": 1}, vector=np.array([-1.0, 0.1], dtype=np.float32))
    for fusion in ("weighted", "rrf"):
        q = Query(("alpha",), vector=np.array([1.0, 0.0]), mode="hybrid", fusion=fusion)
        found = index.search(q, 2)
        assert set(found) == {"words", "meaning"}, fusion


def model_ops() -> Any:
    add = st.tuples(
        st.just("add"),
        st.sampled_from(KEYS),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
        st.one_of(st.none(), vectors),
    )
    remove = st.tuples(st.just("remove"), st.sampled_from(KEYS), st.just([]), st.none())
    return st.lists(st.one_of(add, add, remove), min_size=1, max_size=40)


def apply(ops: list[Any]) -> tuple[SearchIndex, dict[str, tuple[int, Any]]]:
    index = SearchIndex()
    model: dict[str, tuple[int, Any]] = {}
    for seq, (op, key, words, vec) in enumerate(ops):
        if op == "add":
            counts = {w: words.count(w) for w in words}
            index.add(key, counts, seq, None if vec is None else np.array(vec, np.float32))
            model[key] = (seq, vec)
        else:
            assert index.remove(key) == (key in model)
            model.pop(key, None)
    return index, model


@settings(max_examples=200, deadline=None)
@given(ops=model_ops(), q=vectors, scope=st.sampled_from(SCOPES), limit=st.integers(1, 12))
def test_semantic_equals_brute_force_cosine(
    ops: list[Any], q: list[int], scope: str | None, limit: int
) -> None:
    """Semantic search ranks like brute-force cosine through adds, updates and removals."""
    index, model = apply(ops)
    got = index.search_scored(semantic(q), limit, scope)
    want = brute(model, q, limit, scope)
    # Equal cosines computed in different float32 orders may differ in the last bit: compare
    # the scores with a tolerance, and the keys wherever no near-tie makes the order arbitrary.
    truth = {k: float(unit(v) @ unit(q)) for k, (_, v) in model.items() if v is not None}
    assert len(got) == len(want)
    for (key, score), expected in zip(got, want, strict=True):
        assert in_scope(key, scope)
        assert score == pytest.approx(truth[key], abs=1e-5)
        assert score == pytest.approx(truth[expected], abs=1e-5)
        if all(abs(truth[expected] - t) > 1e-5 for k, t in truth.items() if k != expected):
            assert key == expected


def test_identical_vectors_tie_newest_first() -> None:
    """Equal cosines rank the newest document first, scoped or not."""
    index = SearchIndex()
    v = np.array([0.3, -1.0, 2.0], np.float32)
    for i, key in enumerate(["u1:a", "u1:b", "u2:c"]):
        index.add(key, {}, recency=i, vector=v)
    assert index.search(semantic(v), 3) == ["u2:c", "u1:b", "u1:a"]
    assert index.search(semantic(v), 3, "u1") == ["u1:b", "u1:a"]


@pytest.mark.parametrize("dim", [4, 384])
@pytest.mark.parametrize("count", [37, 122, 123])
def test_copies_of_one_vector_tie_newest_first_wherever_they_sit(dim: int, count: int) -> None:
    """One text written many times (an agent's "ok", "thanks") is one vector at many rows. BLAS's
    matrix-vector product rounds a row by its position in the matrix, so the copies scored a
    float32 step apart and ranked by where they sat, not newest first; scoped, unscoped and
    hybrid alike (the fused score carries the cosine)."""
    rng = np.random.default_rng(5)
    index = SearchIndex()
    copy = rng.standard_normal(dim).astype(np.float32)
    copies = []
    for i in range(count):
        key = f"u{i % 2}:s:{i}"
        if i % 4 == 1 or i % 7 == 2:
            index.add(key, {"ok": 1}, vector=copy)
            copies.append(key)
        else:  # pointing away: never above a copy
            other = rng.standard_normal(dim).astype(np.float32) - 3 * copy
            index.add(key, {"other": 1}, vector=other)
    q = (copy + 0.2 * rng.standard_normal(dim)).astype(np.float32)
    for scope in (None, "u1"):
        want = [key for key in reversed(copies) if scope is None or key.startswith("u1:")]
        found = index.search_scored(semantic(q), len(want), scope)
        assert [key for key, _ in found] == want, scope
        assert len({score for _, score in found}) == 1
        mixed = Query(("ok",), vector=q, mode="hybrid", weight=0.4)
        assert index.search(mixed, len(want), scope) == want, scope


@settings(max_examples=150, deadline=None)
@given(
    ops=model_ops(),
    q=vectors,
    word=st.sampled_from(WORDS),
    scope=st.sampled_from(SCOPES),
    limit=st.integers(1, 12),
    fusion=st.sampled_from(["weighted", "rrf"]),
)
def test_hybrid_weight_ends_are_keyword_and_semantic(
    ops: list[Any], q: list[int], word: str, scope: str | None, limit: int, fusion: Any
) -> None:
    """Weight 0 is exactly keyword and 1 exactly semantic; between, only their candidates."""
    index, model = apply(ops)
    v = np.array(q, np.float32)
    keyword = index.search_scored(Query((word,)), limit, scope)
    sem = index.search_scored(semantic(q), limit, scope)
    at = {w: Query((word,), vector=v, mode="hybrid", weight=w, fusion=fusion) for w in (0, 1)}
    assert index.search_scored(at[0], limit, scope) == keyword
    assert index.search_scored(at[1], limit, scope) == sem
    mixed = index.search(Query((word,), vector=v, mode="hybrid", fusion=fusion), limit, scope)
    assert all(in_scope(key, scope) for key in mixed)  # scope holds in every mode
    assert set(mixed) <= {k for k, _ in keyword} | set(brute(model, q, 100, scope))
    if keyword or sem:
        assert mixed


def test_vectors_stay_aligned_through_renumbering() -> None:
    """After the index renumbers, every key keeps its own vector and ranks like brute force."""
    index = SearchIndex()
    rng = np.random.default_rng(7)
    live: dict[str, Any] = {}
    for round_ in range(6):  # many updates: numbers run ahead of documents, the index renumbers
        for i in range(1500):
            key = f"u{i % 3}:k{i}"
            v = rng.standard_normal(16).astype(np.float32)
            index.add(key, {f"w{i % 7}": 1}, vector=v if (i + round_) % 4 else None)
            live[key] = None if (i + round_) % 4 == 0 else unit(v)
    assert index.stats().numbers < 2 * 4500 + 4096  # it did renumber
    for key, v in live.items():
        got = index.vector(key)
        assert (got is None) == (v is None)
        if v is not None:
            assert np.allclose(got, v, atol=1e-6)
    q = rng.standard_normal(16).astype(np.float32)  # continuous: no ties to break
    model = {k: (index.recency(k) or 0, v) for k, v in live.items()}
    assert index.search(semantic(q), 10) == brute(model, q, 10, None)
    assert index.search(semantic(q), 10, "u1") == brute(model, q, 10, "u1")


def test_clear_forgets_vectors_and_dimension() -> None:
    """clear() forgets the vectors and their dimension: another size is accepted after it."""
    index = SearchIndex()
    index.add("a", {}, vector=np.ones(3, np.float32))
    index.clear()
    assert index.dim is None
    assert index.search(semantic(np.ones(3)), 5) == []
    index.add("a", {}, vector=np.ones(5, np.float32))
    assert index.search(semantic(np.ones(5)), 5) == ["a"]


def clustered(n: int, dim: int, seed: int) -> Any:
    """Unit vectors around 100 shared centres (queries land near stored documents, as in use)."""
    centres = np.random.default_rng(0).standard_normal((100, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch not installed")
def test_ann_recall_against_exact() -> None:
    """The graph finds 95% of the exact top 10, scoped or not, after removals."""
    n, dim = 20_000, 64
    x = clustered(n, dim, 1)
    ann, exact = SearchIndex(ann_threshold=1000), SearchIndex(ann_threshold=10**9)
    for i in range(n):
        key = f"u{i % 10}:{i}"
        ann.add(key, {}, i, x[i])
        exact.add(key, {}, i, x[i])
    for i in range(0, n, 7):  # removals reach the graph
        ann.remove(f"u{i % 10}:{i}")
        exact.remove(f"u{i % 10}:{i}")
    queries = clustered(200, dim, 2)
    for scope in (None, "u3"):
        hits = 0
        for q in queries:
            want = exact.search(semantic(q), 10, scope)
            got = ann.search(semantic(q), 10, scope)
            assert all(in_scope(k, scope) for k in got)
            hits += len(set(want) & set(got))
        assert ann.stats().graph is not None  # the graph answered
        assert hits / (10 * len(queries)) >= 0.95, scope


def recall_misses(
    index: SearchIndex, rows: dict[str, Any], queries: Any, scope: str | None
) -> tuple[float, int]:
    """Mean recall@10 of ``index`` against exact cosine over ``rows`` (key -> unit vector),
    and how many queries found fewer than half of their true top 10."""
    keys = [k for k in rows if in_scope(k, scope)]
    matrix = np.stack([rows[k] for k in keys])
    hits, poor = 0, 0
    for q in queries:
        want = {keys[j] for j in np.argsort(-(matrix @ q))[:10]}
        got = index.search(semantic(q), 10, scope)
        assert all(in_scope(k, scope) for k in got)
        found = len(want & set(got))
        hits += found
        poor += found < 5
    return hits / (10 * len(queries)), poor


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch not installed")
def test_graph_keeps_its_recall_when_every_memory_is_rewritten() -> None:
    """Review R25: usearch only marks a removed vector deleted, and a later vector takes its
    slot with the links that led to it unrepaired. Once each of 30,000 memories had been
    rewritten, 5 of 200 queries found fewer than half of their true top 10 (some none), where
    a fresh graph missed none. A new graph now grows once the graph has lost half of what it
    holds, in batches as writes (removals too) earn it rows; the old one answers for the rows
    it lacks meanwhile: searches stay right throughout, scoped or not."""
    n, dim = 30_000, 32
    centres = np.random.default_rng(0).standard_normal((200, dim))

    def around(count: int, seed: int) -> Any:
        rng = np.random.default_rng(seed)
        x = centres[rng.integers(0, len(centres), count)] + 0.35 * rng.standard_normal((count, dim))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    x, queries = around(2 * n, 1), around(200, 2)
    index = SearchIndex()  # the default threshold: the graph answers from 20,000 vectors
    rows: dict[str, Any] = {}
    for i in range(n):
        rows[f"u{i % 4}:{i}"] = x[i]
        index.add(f"u{i % 4}:{i}", {}, vector=x[i])
    smallest = n
    for count, i in enumerate(np.random.default_rng(1).permutation(n).tolist()):
        rows[f"u{i % 4}:{i}"] = x[n + i]
        index.add(f"u{i % 4}:{i}", {}, vector=x[n + i])  # a rewrite: a removal and an add
        graph = index.stats().graph
        assert graph is not None
        smallest = min(smallest, graph)
        if count == n // 2 + 1000:  # a new graph growing, the old one answering beside it
            assert graph < n // 2
            for scope in (None, "u1"):
                recall, poor = recall_misses(index, rows, queries[:50], scope)
                assert poor == 0, (scope, recall)
                assert recall >= 0.98, (scope, recall)
    assert smallest < n // 2  # it started over
    for scope in (None, "u1"):  # (u1: 7,500 members, searched through the graph)
        recall, poor = recall_misses(index, rows, queries, scope)
        assert poor == 0, (scope, recall)
        assert recall >= 0.98, (scope, recall)


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch not installed")
def test_a_graph_growing_anew_answers_through_renumbering_and_removals() -> None:
    """While a new graph grows (the old one had lost half its vectors), deletions renumber the
    index: both graphs follow the new numbers, searches keep finding what brute force finds,
    deleted and rewritten memories never come back, and later writes finish the new graph."""
    rng = np.random.default_rng(5)
    n, dim = 4000, 8
    index = SearchIndex(ann_threshold=1000)
    rows: dict[str, Any] = {}

    def write(key: str) -> None:
        rows[key] = unit(rng.standard_normal(dim))
        index.add(key, {}, vector=rows[key])

    def check() -> None:
        keys = list(rows)
        matrix = np.stack([rows[k] for k in keys])
        for q in rng.standard_normal((20, dim)).astype(np.float32):
            want = [keys[j] for j in np.argsort(-(matrix @ unit(q)))[:5]]
            assert index.search(semantic(q), 5) == want

    for i in range(n):
        write(f"k{i}")
    held = index.stats().graph
    assert held is not None
    for i in range(n):  # rewrites, until a new graph starts
        write(f"k{i}")
        if (index.stats().graph or 0) <= held // 2:
            break
    else:
        raise AssertionError("the graph never started over")
    numbers = index.stats().numbers
    check()
    for j in range(n - 1, n - 1200, -1):  # deletions: the index renumbers
        index.remove(f"k{j}")
        rows.pop(f"k{j}")
    stats = index.stats()
    assert stats.numbers < numbers  # renumbered, the new graph still growing
    assert stats.graph is not None
    assert stats.graph < stats.vectors
    check()
    for k in range(2000):  # more rewrites (the graph may start over again)
        write(f"k{k}")
    check()
    for k in range(6000):  # new memories: the graph catches up
        write(f"new{k}")
        stats = index.stats()
        assert stats.graph is not None
        if stats.graph + 2 * ANN_BATCH >= stats.vectors:
            break
    else:
        raise AssertionError(stats)
    check()


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="usearch not installed")
def test_graph_grows_in_batches_and_new_rows_are_found_at_once() -> None:
    """No bulk build: the graph takes rows in batches, and rows it lacks are still searched."""
    x = clustered(3000, 32, 8)
    index = SearchIndex(ann_threshold=800)
    for i, v in enumerate(x):
        index.add(f"u{i % 4}:{i}", {}, i, v)
        if i >= 800:  # searched through the graph: the newest row is found by its own vector
            assert index.search(semantic(v), 1) == [f"u{i % 4}:{i}"]
            assert index.search(semantic(v), 1, "u" + str(i % 4)) == [f"u{i % 4}:{i}"]
        if i == 800:
            graph = index.stats().graph
            assert graph is not None
            assert graph >= 800 - 2 * ANN_BATCH
    graph = index.stats().graph
    assert graph is not None
    assert graph + 2 * ANN_BATCH >= len(x)  # caught up, a batch or two behind
    index.remove("u1:2001")  # in the graph: removed from it too
    assert "u1:2001" not in index.search(semantic(x[2001]), 5)


def test_vectors_across_blocks_match_brute_force() -> None:
    """Vectors spill over several storage blocks (and a gap of keyword-only documents)."""
    n = 2 * VECTOR_BLOCK + 100
    x = clustered(n, 8, 9)
    index = SearchIndex(ann_threshold=10**9)
    for i in range(n):
        index.add(f"u{i % 3}:{i}", {"w": 1}, i, None if 500 <= i < 700 else x[i])
    assert index.vector(f"u0:{n - 1 - (n - 1) % 3}") is not None
    keep = np.array([not 500 <= i < 700 for i in range(n)])
    for q in clustered(5, 8, 10):
        sims = np.where(keep, x @ q, -np.inf)
        want = [f"u{i % 3}:{i}" for i in np.argsort(-sims, kind="stable")[:10]]
        assert index.search(semantic(q), 10) == want
        scoped = [i for i in np.argsort(-sims, kind="stable") if i % 3 == 1][:10]
        assert index.search(semantic(q), 10, "u1") == [f"u1:{i}" for i in scoped]


def test_scopes_read_their_rows_from_many_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 64 rows: a user's few rows spread over every block are read one by one, a large
    scope's block by block; both answer as brute force does."""
    from tta_dev_primitives.search import _blocks

    monkeypatch.setattr(_blocks, "VECTOR_BLOCK_BITS", 6)
    monkeypatch.setattr(_blocks, "VECTOR_BLOCK", 64)
    n = 640
    x = clustered(n, 8, 12)
    index = SearchIndex(ann_threshold=10**9)
    for i in range(n):
        index.add(f"g{i % 2}:u{i % 40}:{i}", {"w": 1}, i, x[i])
    for q in clustered(6, 8, 13):
        sims = x @ q
        for scope, member in (("g0", lambda i: i % 2 == 0), ("g1:u7", lambda i: i % 40 == 7)):
            ranked = [i for i in np.argsort(-sims, kind="stable") if member(i)][:10]
            want = [f"g{i % 2}:u{i % 40}:{i}" for i in ranked]
            assert index.search(semantic(q), 10, scope) == want


def test_without_usearch_search_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without usearch installed, a large index searches exactly and never starts a graph."""
    monkeypatch.setitem(sys.modules, "usearch", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "usearch.index", None)
    x = clustered(300, 16, 5)
    index, exact = SearchIndex(ann_threshold=1), SearchIndex(ann_threshold=10**9)
    for i, v in enumerate(x):
        index.add(f"u{i % 3}:{i}", {}, i, v)
        exact.add(f"u{i % 3}:{i}", {}, i, v)
    for q in clustered(20, 16, 6):
        for scope in (None, "u1"):
            assert index.search_scored(semantic(q), 10, scope) == exact.search_scored(
                semantic(q), 10, scope
            )
    assert index.stats().graph is None


# -- several vectors per document (one per field, as LangGraph indexes) ---------------------------


@pytest.mark.parametrize("threshold", [10**9, 1], ids=["exact", "graph"])
def test_a_document_with_several_vectors_scores_by_its_best(threshold: int) -> None:
    """A's second vector matches the query exactly: A scores 1.0 and ranks first."""
    if threshold == 1 and importlib.util.find_spec("usearch") is None:
        pytest.skip("the graph needs the 'vectors' extra (usearch)")
    index = SearchIndex(ann_threshold=threshold)
    index.add("a", {}, vector=[[1, 0, 0, 0], [0, 0, 1, 0]])
    index.add("b", {}, vector=[0.6, 0, 0.8, 0])
    index.add("c", {}, vector=[0, 1, 0, 0])
    found = index.search_scored(semantic([0, 0, 1, 0]), 3)
    assert [k for k, _ in found] == ["a", "b", "c"]
    assert found[0][1] == pytest.approx(1.0)
    assert found[1][1] == pytest.approx(0.8)
    assert index.vectors("a").shape == (2, 4)


@settings(max_examples=60, deadline=None)
@given(
    docs=st.dictionaries(
        st.sampled_from(KEYS), st.lists(vectors, min_size=1, max_size=3), min_size=1
    ),
    removed=st.sets(st.sampled_from(KEYS)),
    q=vectors,
    scope=st.sampled_from(SCOPES),
)
def test_several_vectors_rank_by_the_best_cosine(
    docs: dict[str, list[list[int]]], removed: set[str], q: list[int], scope: str | None
) -> None:
    """Against brute force over each document's best vector, through removals and re-adds."""
    index = SearchIndex()
    for key, rows in docs.items():
        index.add(key, {}, vector=rows)
    for key in removed:
        index.remove(key)
    for key in sorted(removed & set(docs))[:2]:
        index.add(key, {}, vector=docs[key])  # back, newest
        removed.discard(key)
    qn = unit(q)
    best = {
        k: max(float(unit(r) @ qn) for r in rows)
        for k, rows in docs.items()
        if k not in removed and in_scope(k, scope)
    }
    found = index.search_scored(semantic(q), 50, scope)
    assert {k for k, _ in found} == set(best)
    for key, score in found:
        assert score == pytest.approx(best[key], abs=1e-5)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


@pytest.mark.parametrize("threshold", [10**9, 64], ids=["exact", "graph"])
def test_a_scope_scores_further_vectors_exactly_as_the_whole_index(threshold: int) -> None:
    """A scope (or the graph's few candidates) looks its members' further vectors up by
    document; the whole index reads them in one pass: the same scores to the bit, by the best
    vector of each, and the same order."""
    if threshold == 64 and importlib.util.find_spec("usearch") is None:
        pytest.skip("the graph needs the 'vectors' extra (usearch)")
    rng = np.random.default_rng(11)
    index = SearchIndex(ann_threshold=threshold)
    rows = {}
    for i in range(600):
        key = f"u{i // 25}:{i}"
        rows[key] = rng.standard_normal((1 + i % 3, DIM)).astype(np.float32)
        index.add(key, {}, vector=rows[key] if i % 3 else rows[key][0])
    for key in [f"u{u}:{u * 25 + 1}" for u in range(0, 24, 3)]:
        index.remove(key)
        del rows[key]
    for q in rng.standard_normal((8, DIM)).astype(np.float32):
        whole = dict(index.search_scored(semantic(q), len(rows)))
        if threshold == 64:  # the graph proposes candidates: score what it found, exactly
            assert len(whole) >= 10
        for user in (0, 3, 7, 23):
            found = index.search_scored(semantic(q), 30, f"u{user}")
            want = {k: v for k, v in rows.items() if k.startswith(f"u{user}:")}
            assert {k for k, _ in found} == set(want)
            qn = unit(q)
            for key, score in found:
                best = max(float(unit(r) @ qn) for r in want[key])
                assert score == pytest.approx(best, abs=1e-5)
                if key in whole:
                    assert score == whole[key]
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


def test_several_vectors_survive_renumbering() -> None:
    """Past 4,096 numbers, mostly dead, the index renumbers: every vector stays with its key."""
    rng = np.random.default_rng(7)
    index = SearchIndex()
    kept = {}
    for i in range(6000):
        rows = rng.normal(size=(2, DIM)).astype(np.float32)
        index.add(f"k{i}", {}, vector=rows)
        if i % 10 == 0:
            kept[f"k{i}"] = rows
    for i in range(6000):
        if f"k{i}" not in kept:
            index.remove(f"k{i}")
    for key, rows in kept.items():
        want = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        assert np.allclose(index.vectors(key), want, atol=1e-6), key
    key, rows = next(iter(kept.items()))
    found = index.search_scored(semantic(rows[1]), 1)
    assert found[0][0] == key


@pytest.mark.skipif(importlib.util.find_spec("usearch") is None, reason="needs usearch")
def test_further_vectors_added_before_the_graph_starts_join_it() -> None:
    """Documents with two vectors each, the graph starting part-way: it ranks as exact does."""
    rng = np.random.default_rng(3)
    graph, exact = SearchIndex(ann_threshold=40), SearchIndex(ann_threshold=10**9)
    rows = rng.normal(size=(300, 2, DIM)).astype(np.float32)
    for i, pair in enumerate(rows):
        for index in (graph, exact):
            index.add(f"k{i}", {}, vector=pair)
    for q in rng.normal(size=(20, DIM)):
        want = exact.search_scored(semantic(q), 5)
        got = graph.search_scored(semantic(q), 5)
        assert [k for k, _ in got] == [k for k, _ in want]
    graph.remove("k7")
    assert all(k != "k7" for k, _ in graph.search_scored(semantic(rows[7][1]), 5))


def test_further_vectors_join_a_starting_graph_a_batch_at_a_time() -> None:
    """When the graph started, every further vector held so far joined it in the one add that
    started it: 5,000 memories of three vectors each, 2.6 s in one call on the event loop.
    They join in batches now, after the documents' first vectors; no add hands the graph more
    than a batch beside its own vectors, and searches meanwhile rank as exact ones do."""
    pytest.importorskip("usearch")
    rng = np.random.default_rng(11)
    graph, exact = SearchIndex(ann_threshold=400), SearchIndex(ann_threshold=10**9)
    rows = rng.normal(size=(700, 3, DIM)).astype(np.float32)
    queries = rng.normal(size=(5, DIM))
    grew = []
    for i, triple in enumerate(rows):
        before = graph.stats().graph or 0
        for index in (graph, exact):
            index.add(f"k{i}", {}, vector=triple)
        grew.append((graph.stats().graph or 0) - before)
        if i % 50 == 49:  # the graph still catching up, or caught up
            for q in queries:
                want = exact.search_scored(semantic(q), 5)
                assert [k for k, _ in graph.search_scored(semantic(q), 5)] == [k for k, _ in want]
    assert max(grew) <= ANN_BATCH + 3, max(grew)
    assert graph.stats().graph >= 3 * 700 - ANN_BATCH  # all but a batch still filling
