"""The inverted index: same answers as brute force, and work bounded by the words asked about."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_model import MemoryModel
from tta_dev_primitives import InMemoryStore, MemoryPrimitive
from tta_dev_primitives.search import MAX_QUERY_TERMS, Analyzer, _index, _postings, _scope_index
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._bm25 import LONG_TEXT, SHORT_TEXT, length_b
from tta_dev_primitives.search._facets import FACET_MARK
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._scope_index import CACHED_SCOPE, MAX_MASKS
from tta_dev_primitives.search._term_index import TermIndex
from tta_dev_primitives.search._tokens import words

ANALYZER = Analyzer()

VOCAB = ["alpha", "alps", "al", "beta", "bet", "betting", "gamma", "redis", "red", "reddish",
         "timeout", "time", "zeta"]  # fmt: skip
KEYS = [f"u{u}:s{s}:{k}" for u in (1, 2, 10) for s in (1, 2) for k in "abc"] + ["u1:s1", "solo"]

docs = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8).map(" ".join),
    ),
    min_size=1,
    max_size=60,
)
query = st.one_of(
    st.sampled_from(VOCAB),
    st.sampled_from(VOCAB).map(lambda w: w[:2]),
    st.lists(st.sampled_from(VOCAB), min_size=2, max_size=4).map(" ".join),
    st.just(""),
)


@settings(max_examples=300, deadline=None)
@given(
    writes=docs,
    deletes=st.lists(st.sampled_from(KEYS), max_size=5),
    queries=st.lists(
        st.tuples(query, st.integers(1, 6), st.sampled_from([None, "u1", "u1:s1", "u10", "solo"])),
        min_size=1,
        max_size=10,
    ),
)
def test_index_ranks_exactly_like_brute_force(
    writes: list[tuple[str, str]],
    deletes: list[str],
    queries: list[tuple[str, int, str | None]],
) -> None:
    """Pruned, prefix and scoped search return the brute-force BM25 order, ties newest first."""
    store = InMemoryStore(max_size=1000)
    model = MemoryModel(max_size=1000)
    for key, text in writes:
        store.add(key, {"content": text})
        model.add(key, {"content": text}, None)
    for key in deletes:
        assert store.delete(key) == model.delete(key)
    for q, limit, scope in queries:
        assert store.search(q, limit, scope=scope) == model.search(q, limit, scope)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.sampled_from(KEYS), st.sampled_from(VOCAB)),
            st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just("")),
            st.tuples(st.just("search"), st.sampled_from(["u1", "u1:s1", "u10", "solo"]), query),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_scoped_search_stays_exact_while_the_scope_changes(
    steps: list[tuple[str, str, str]],
) -> None:
    """Writes and deletes between scoped searches keep each answer equal to brute force."""
    store = InMemoryStore(max_size=1000)
    model = MemoryModel(max_size=1000)
    for op, key, text in steps:
        if op == "add":
            store.add(key, {"content": text})
            model.add(key, {"content": text}, None)
        elif op == "delete":
            assert store.delete(key) == model.delete(key)
        else:
            assert store.search(text, 5, scope=key) == model.search(text, 5, key)


def test_a_scoped_search_weighs_words_by_the_scope() -> None:
    """A name in every turn of one user's scope counts for little there, however rare elsewhere."""
    store = InMemoryStore(max_size=1000)
    for i in range(200):
        store.add(f"u2:s1:{i}", {"content": f"weather report number {i} garden"})
    for i in range(8):
        store.add(f"u1:s1:{i}", {"content": f"Maria said hello {i}"})
    store.add("u1:s1:x", {"content": "Maria Maria likes"})
    store.add("u1:s1:y", {"content": "the garden is lovely"})
    # Namespace-wide, "maria" (9 of 210) outweighs "garden" (201 of 210): the repeated name
    # wins. Within u1, "maria" is in 9 of 10 turns and "garden" in one: the garden turn wins.
    assert store.search("Maria garden", 1) == [{"content": "Maria Maria likes"}]
    assert store.search("Maria garden", 1, scope="u1") == [{"content": "the garden is lovely"}]


def test_many_scopes_searched_in_turn_stay_exact() -> None:
    """More scopes than masks kept at once, searched and written in turn, match brute force."""
    store = InMemoryStore(max_size=10_000)
    model = MemoryModel(max_size=10_000)
    for round_ in range(3):
        for u in range(80):
            key, value = f"u{u}:s{round_}:k", {"content": f"note {VOCAB[(u + round_) % 13]}"}
            store.add(key, value)
            model.add(key, value, None)
            for q in ("note", VOCAB[u % 13]):
                assert store.search(q, 3, scope=f"u{u}") == model.search(q, 3, f"u{u}")


def test_a_large_scope_stays_exact_through_writes_and_deletes() -> None:
    """A scope big enough to keep its mask between searches answers like brute force after
    every add, update and delete."""
    store = InMemoryStore(max_size=10_000)
    model = MemoryModel(max_size=10_000)

    def write(key: str, text: str) -> None:
        store.add(key, {"content": text})
        model.add(key, {"content": text}, None)

    def delete(key: str) -> None:
        assert store.delete(key) == model.delete(key)

    for i in range(CACHED_SCOPE + 50):
        write(f"big:s{i % 3}:{i}", f"{VOCAB[i % 13]} {VOCAB[i % 7]}")
        write(f"other:{i}", VOCAB[i % 5])
    edits = [
        lambda: write("big:s1:new", "zeta zeta"),
        lambda: write("big:s0:5", "gamma redis"),  # an update: a new number for the key
        lambda: delete("big:s2:8"),
        lambda: write("big", "zeta alone"),  # a key equal to the scope belongs to it
        lambda: write("bigger:x", "zeta"),  # a key that only starts like the scope does not
    ]
    for edit in edits:
        edit()
        for q in ("zeta", "gamma red", "alps bet"):
            assert store.search(q, 5, scope="big") == model.search(q, 5, "big")


def test_more_large_scopes_than_masks_kept_stay_exact() -> None:
    """Past MAX_MASKS large scopes, a scope whose mask was dropped still finds its new member."""
    index = SearchIndex()
    scopes = MAX_MASKS + 2
    for j in range(scopes):
        for i in range(CACHED_SCOPE):
            index.add(f"s{j}:{i}", {"w": 1})
    query = Query(("w",))
    for j in range(scopes):
        assert index.search(query, 1, scope=f"s{j}") == [f"s{j}:{CACHED_SCOPE - 1}"]
    for j in range(scopes):
        index.add(f"s{j}:new", {"w": 1})
        index.remove(f"s{(j + 1) % scopes}:0")
        assert index.search(query, 2, scope=f"s{j}") == [f"s{j}:new", f"s{j}:{CACHED_SCOPE - 1}"]
        assert index.search(query, 1, scope=f"s{j}:new") == [f"s{j}:new"]
        assert len(index.search(query, 10_000, scope=f"s{j}")) == CACHED_SCOPE + (
            j == 0
        )  # +new, -:0


def build_terms(n: int) -> tuple[SearchIndex, TermIndex]:
    """The same ``n`` turns in a whole index and in a bare term index (numbered alike)."""
    index, terms = SearchIndex(), TermIndex()
    for i in range(n):
        rare = f" zebra{i % 500}" if i % 100 == 0 else ""
        text = f"the user asked about topic {i % 50} and the answer was long{rare}"
        index.add(f"u{i % 200}:s{i % 7}:{i}", ANALYZER.term_counts([text]))
        terms.add(i, f"u{i % 200}:s{i % 7}:{i}", ANALYZER.term_counts([text]))
    return index, terms


def scored_for(terms: TermIndex, query: str, scope: str | None = None) -> int:
    """How many documents a keyword search scores: the work it does."""
    view = None if scope is None else terms.view(scope, None, 0)
    plan = terms.plan(ANALYZER.query(query), view)
    return 0 if plan is None else len(terms.score(plan)[0])


def test_rare_term_search_scores_only_its_postings() -> None:
    """A rare term's search scores a handful of documents out of 20,000."""
    _, terms = build_terms(20_000)
    assert 0 < scored_for(terms, "zebra0?") < 100


def test_a_question_scores_only_its_content_words() -> None:
    """Stop words never reach the postings, and 20,000 equal scores still rank newest first."""
    index, terms = build_terms(20_000)
    question = "What was the answer about zebra100?"
    assert scored_for(terms, question) == scored_for(terms, "answer zebra100")
    newest = [f"u{i % 200}:s{i % 7}:{i}" for i in (19_999, 19_998)]
    assert index.search(ANALYZER.query("What was the answer?"), 2) == newest


def test_small_scope_scores_only_its_own_documents() -> None:
    """A scoped search for a common term scores the scope's documents, not the global postings."""
    _, terms = build_terms(20_000)
    assert 0 < scored_for(terms, "answer?", scope="u3:s3") < 200


def test_a_query_of_stop_words_searches_them() -> None:
    """'what is it' has only stop words: it searches them, never the most recent memories."""
    index, _ = build_terms(100)
    query = ANALYZER.query("What is it?")
    assert query.terms == ("'what", "'is", "'it")
    assert not query.blank
    assert index.search(query, 5) == []  # no memory holds any of them
    index.add("band", ANALYZER.term_counts(["We saw The Who live"]))
    assert index.search(ANALYZER.query("who?"), 5) == ["band"]


def test_a_long_query_scores_only_its_rarest_terms() -> None:
    """A query with more than MAX_QUERY_TERMS known terms keeps the rarest ones."""
    index = SearchIndex()
    for i in range(200):
        index.add(f"k{i}", {f"w{j}": 1 for j in range(i % 50, 50)})
    terms = tuple(f"w{j}" for j in range(50))
    found = index.search(Query(terms), 3)
    rarest = index.search(Query(terms[:MAX_QUERY_TERMS]), 3)
    assert found == rarest


def test_deleted_documents_postings_are_compacted() -> None:
    """Deleting most documents shrinks postings lists instead of leaving tombstones forever."""
    index = SearchIndex()
    for i in range(1000):
        index.add(f"k{i}", {"common": 1, f"own{i}": 1})
    for i in range(990):
        index.remove(f"k{i}")
    stats = index.stats()
    assert stats.terms == 11  # "common" and the ten live "own" terms: no "own0"
    assert stats.postings < 50 + 10
    assert index.search(Query(("common",)), 100) == [f"k{i}" for i in range(999, 989, -1)]


def test_updates_renumber_instead_of_growing_forever() -> None:
    """Rewriting the same keys again and again keeps document numbers near the live count."""
    index = SearchIndex()
    for round_ in range(50):
        for i in range(500):
            index.add(f"k{i}", {"common": 1 + (i + round_) % 3, f"own{i}": 1})
    assert len(index) == 500
    assert index.stats().numbers < 2 * 500 + 4096
    assert index.search(Query(("own7",)), 5) == ["k7"]
    top = index.search(Query(("common",)), 3)
    assert top == ["k499", "k496", "k493"]  # tf 3 at round 49 ((i + 49) % 3 == 2), newest first


def test_vocabulary_forgets_terms_of_deleted_documents() -> None:
    """Prefix expansion never offers a term that no live document has."""
    index = SearchIndex()
    index.add("a", {"redis": 1})
    index.add("b", {"reddish": 1})
    assert index.search(Query(("red",), prefix_last=True), 5) == ["b", "a"]
    index.remove("b")
    assert index.search(Query(("red",), prefix_last=True), 5) == ["a"]
    terms = TermIndex()
    terms.add(0, "a", {"redis": 1})
    terms.add(1, "b", {"reddish": 1})
    assert terms.expand("red") == ["reddish", "redis"]
    terms.remove(1, "b", ("reddish",), 1)
    assert terms.expand("red") == ["redis"]


@given(st.text())
def test_fast_tokenizer_matches_the_word_regex(text: str) -> None:
    """words() gives exactly the casefolded \\w+ runs (NFC-composed), on ASCII and non-ASCII
    text alike, where no combining mark is involved (those join their word: test_analyzer)."""
    import re
    import unicodedata

    folded = unicodedata.normalize("NFC", text.casefold())
    if not any(unicodedata.category(c).startswith("M") for c in folded):
        assert words(text) == re.findall(r"\w+", folded)
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    assert words(ascii_text) == re.findall(r"\w+", ascii_text.casefold())


def test_huge_documents_saturate_instead_of_corrupting_postings() -> None:
    """tf past 4,095 and length past 2**20 saturate; document numbers and ranking stay right."""
    index = SearchIndex()
    index.add("huge", {"word": 10_000, **{f"t{i}": 1 for i in range(1_100_000)}})
    index.add("capped", {"word": 4_095, **{f"t{i}": 1 for i in range(1_100_000)}})
    index.add("small", {"word": 1, "other": 1})
    # Saturated counts never spill into the document numbers: each key keeps its own terms.
    assert index.search(Query(("other",)), 3) == ["small"]
    # "huge" and "capped" now score the same, so the newer comes first; both beat "small".
    found = index.search_scored(Query(("word",)), 3)
    assert [key for key, _ in found] == ["capped", "huge", "small"]
    assert found[0][1] == found[1][1] > found[2][1]
    assert index.search(Query(("t7",)), 3) == ["capped", "huge"]


def _bm25_by_hand(tf: int, length: int, avg: float, df: int, n: int, b: float) -> float:
    """BM25 with k1 1.5 and Lucene's idf, written out here rather than taken from the library."""
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf * 2.5 / (tf + 1.5 * (1 - b + b * length / avg))


async def test_short_texts_weigh_length_less_than_long_ones() -> None:
    """Turns (a few words) are scored with b 0.5, long texts with b 0.75, in every mode that
    ranks by BM25: a 3-word turn against a 1-word one says little about verbosity."""
    short = MemoryPrimitive()
    await short.add("t1", {"content": "apple"})
    await short.add("t2", {"content": "apple banana cherry"})
    found = {m.key: m.score for m in await short.search_scored("apple", 2)}
    # "apple" is in both; lengths 1 and 3, average 2.
    assert found["t1"] == pytest.approx(_bm25_by_hand(1, 1, 2, 2, 2, b=0.5))
    assert found["t2"] == pytest.approx(_bm25_by_hand(1, 3, 2, 2, 2, b=0.5))

    long = MemoryPrimitive()
    filler = [f"filler{i}" for i in range(60)]
    await long.add("d1", {"content": " ".join(["apple", *filler[:39]])})
    await long.add("d2", {"content": " ".join(["apple", *filler[:59]])})
    found = {m.key: m.score for m in await long.search_scored("apple", 2)}
    assert found["d1"] == pytest.approx(_bm25_by_hand(1, 40, 50, 2, 2, b=0.75))
    assert found["d2"] == pytest.approx(_bm25_by_hand(1, 60, 50, 2, 2, b=0.75))


@given(st.floats(0.01, 500), st.floats(0.01, 500))
def test_length_weight_moves_smoothly_from_short_to_long(a: float, b: float) -> None:
    """b is 0.5 for short texts, 0.75 for long ones, never decreasing and with no jump between:
    a memory growing past the threshold re-ranks gradually."""
    lo, hi = sorted((a, b))
    assert 0.5 <= length_b(lo) <= length_b(hi) <= 0.75
    assert length_b(SHORT_TEXT) == 0.5
    assert length_b(LONG_TEXT) == 0.75
    step = (0.75 - 0.5) / (LONG_TEXT - SHORT_TEXT)
    assert length_b(hi) - length_b(lo) <= step * (hi - lo) + 1e-12


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["u1:s1:", "u1:s2:", "u2:s1:", "u3:"]),
            st.lists(st.sampled_from(["pro", "proa", "prob", "proc", "prz", "pa"]), max_size=4),
        ),
        max_size=80,
    ),
    st.sampled_from(["u1", "u1:s1", "u2", "u3"]),
    st.sets(st.integers(0, 79)),
)
def test_a_scoped_expansion_is_the_scope_s_own_words(
    docs: list[tuple[str, list[str]]], scope: str, deleted: set[int]
) -> None:
    """expand(token, mask) gives the live terms starting with ``token`` that a live member of
    the scope holds, in order: read from the mask one by one for short postings, with numpy
    for long ones (a term many memories hold), or from the members' own terms, alike."""
    from tta_dev_primitives.search import _postings
    from tta_dev_primitives.search._scopes import in_scope

    terms = TermIndex()
    held: dict[int, tuple[str, list[str]]] = {}
    for docno, (prefix, words_) in enumerate(docs):
        key = f"{prefix}{docno}"
        counts = dict.fromkeys(words_ or ["pa"], 1)
        terms.add(docno, key, counts)
        held[docno] = (key, list(counts))
    for docno in sorted(deleted & set(held)):
        key, ts = held.pop(docno)
        terms.remove(docno, key, ts, len(ts))
    view = terms.view(scope, None, 0)
    want = sorted(
        {t for key, ts in held.values() if in_scope(key, scope) for t in ts if t.startswith("pro")}
    )
    short = _postings.Held.SHORT
    try:
        for each in (short, 0):  # postings read one by one, then all with numpy
            setattr(_postings.Held, "SHORT", each)  # noqa: B010
            assert terms.expand("pro", view.mask) == want
    finally:
        setattr(_postings.Held, "SHORT", short)  # noqa: B010
    # A scope smaller than the prefix's range reads its members' own terms: alike.
    assert terms.expand("pro", view.mask, lambda d: held[d][1], 0) == want
    every = {t for _, ts in held.values() for t in ts if t.startswith("pro")}
    assert terms.expand("pro") == sorted(every)


async def test_a_scoped_unfinished_word_completes_past_many_words_of_other_scopes() -> None:
    """5,000 words of another user sort before this user's 'projector' (more than a scan of
    the vocabulary looked at): the scoped search still completes 'pro' to it, as a memory
    holding only this user's memories does (a per-user replica)."""
    shared, own = MemoryPrimitive(max_size=10_000), MemoryPrimitive()
    for i in range(5000):
        await shared.add(f"u2:s1:{i}", {"content": f"pro{10000 + i} is a part number"})
    for memory in (shared, own):
        await memory.add("u1:s1:a", {"content": "I bought a projector"})
    want = [(h.key, round(h.score, 9)) for h in await own.search_scored("my pro", scope="u1")]
    got = [(h.key, round(h.score, 9)) for h in await shared.search_scored("my pro", scope="u1")]
    assert want == [("u1:s1:a", want[0][1])]
    assert got == want


@settings(deadline=None, max_examples=60)
@given(
    recencies=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    limit=st.integers(1, 14),
)
def test_newest_first_orders_equal_recencies_alike_scoped_or_not(
    recencies: list[int], limit: int
) -> None:
    """A blank search's newest first reads the index in order when it can and through a scope's
    mask otherwise: equal recencies (a replica's partitions can share one) come out in the same
    order both ways, the latest indexed first."""
    index = SearchIndex()
    seq = 0
    for i, recency in enumerate(recencies):
        seq = max(seq, recency)  # in recency order: the unscoped answer reads the index in order
        index.add(f"u:{i}", {"w": 1}, recency=seq)
    whole = index.recent(limit)
    assert index.recent(limit, "u") == whole
    assert index.recent(limit, wanted=()) == whole
    indexed = [index.recency(f"u:{i}") or 0 for i in range(len(recencies))]
    latest_first = sorted(range(len(recencies)), key=lambda i: (-indexed[i], -i))
    assert whole == [f"u:{i}" for i in latest_first][:limit]


_VOCAB = ["alpha", "alps", "alpine", "beta", "bet", "gamma", "delta", "del"]


@settings(deadline=None, max_examples=80)
@given(
    docs=st.lists(
        st.dictionaries(st.sampled_from(_VOCAB), st.integers(1, 4), min_size=1, max_size=4),
        min_size=1,
        max_size=30,
    ),
    terms=st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=4, unique=True),
    prefix=st.booleans(),
    filler=st.integers(0, 3),
)
def test_a_scope_scores_alike_however_large_the_index_around_it(
    docs: list[dict[str, int]], terms: list[str], prefix: bool, filler: int
) -> None:
    """A scope ranks by its own statistics, so memories outside it with none of its words
    change nothing: the same keys and the same scores to the bit, whether its matches are most
    of the index (summed into one array the index's size) or a sliver of it (summed sparsely)."""
    query = Query(tuple(terms), prefix_last=prefix)
    small, large = SearchIndex(), SearchIndex()
    for i, counts in enumerate(docs):
        for index in (small, large):
            index.add(f"in:{i}", counts)
        for j in range(filler * 40):  # other users' memories, other words, in between
            large.add(f"out{j % 5}:{i}:{j}", {f"zz{j % 11}": 1 + j % 3})
    assert large.search_scored(query, 50, "in") == small.search_scored(query, 50, "in")
    keyword = small.search_scored(query, 50)
    assert [key for key, _ in keyword] == [key for key, _ in small.search_scored(query, 50, "in")]


EVEN = FACET_MARK + "even"


def _scoped_counts(word: str) -> dict[str, int]:
    """A document's counts: its word, one all share, and a facet half the words hold."""
    counts = {word: 1, "common": 1}
    if VOCAB.index(word) % 2 == 0:
        counts[EVEN] = 1
    return counts


# Few keys, so that keys are often rewritten: two scopes' members, keys equal to a scope.
_FEW_KEYS = ["u1:s1:a", "u1:s1:b", "u1:s1", "u1:s2:a", "u1", "u2:s1:a", "u2:s1:b"]
_scope_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"), st.sampled_from(_FEW_KEYS), st.sampled_from(VOCAB[:4]), st.booleans()
        ),
        st.tuples(st.just("remove"), st.sampled_from(_FEW_KEYS), st.just(""), st.just(False)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=120, deadline=None)
@given(
    _scope_ops,
    st.sampled_from([0, 8]),
    st.sampled_from([(2, 1), (2, 2), (1000, 2)]),
    st.sampled_from([0, 24]),
)
def test_scopes_answer_as_an_index_built_afresh_between_any_writes(
    ops: list[tuple[str, str, str, bool]], compact_from: int, masks: tuple[int, int], bisect: int
) -> None:
    """Scoped searches between writes: masks kept from two members on (or never), for at most
    one or two scopes (so they are dropped and made again); removed members dropped once they
    outnumber the live ones (or past 8); renumbering from four numbers; writes sharing
    recencies or out of recency order (renumbering then reorders the members). Every answer
    equals that of an index built afresh from the live documents, in the order the whole index
    lists them: a cached mask takes members numbered since it was made and forgets removed
    ones, and equal recencies keep one order, scoped or not. A scope's members are looked up
    in the postings (of the query's words, of a filter's facets) always, or when that costs
    less than reading the postings through the scope's mask."""
    live: dict[str, str] = {}
    with (
        mock.patch.object(_scope_index, "CACHED_SCOPE", masks[0]),
        mock.patch.object(_scope_index, "MAX_MASKS", masks[1]),
        mock.patch.object(_scope_index, "COMPACT_FROM", compact_from),
        mock.patch.object(_index, "RENUMBER_FROM", 4),
        mock.patch.object(_postings, "_BISECT_COST", bisect),
    ):
        index = SearchIndex()
        for clock, (op, key, word, early) in enumerate(ops):
            if op == "add":
                live[key] = word
                index.add(key, _scoped_counts(word), clock // 2 - 3 * early)
            else:
                index.remove(key)
                live.pop(key, None)
            fresh = SearchIndex()
            for k in reversed(index.recent(len(live) + 1)):
                fresh.add(k, _scoped_counts(live[k]), index.recency(k))
            for scope in ("u1", "u1:s1", "u2:s1", "u1:s1:a"):
                assert sorted(index.scope_keys(scope)) == sorted(fresh.scope_keys(scope))
                for q in (
                    Query(("common",)),
                    Query(("alpha", "al"), prefix_last=True),
                    Query(("common",), filter=(EVEN,)),
                ):
                    assert index.search_scored(q, 50, scope) == fresh.search_scored(q, 50, scope)
                for wanted in ((), (EVEN,), (EVEN, FACET_MARK + "none")):
                    assert index.recent(50, scope, wanted) == fresh.recent(50, scope, wanted)
