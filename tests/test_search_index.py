"""The inverted index: same answers as brute force, and no full scans for selective queries."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from search_model import MemoryModel
from tta_dev_primitives import InMemoryStore
from tta_dev_primitives.stores._index import SearchIndex
from tta_dev_primitives.stores._text import query_tokens, term_counts

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


class CountingDict(dict[Any, Any]):
    """A dict that counts reads, to see how many documents a search touches."""

    reads = 0

    def __contains__(self, key: object) -> bool:
        CountingDict.reads += 1
        return super().__contains__(key)

    def __getitem__(self, key: Any) -> Any:
        CountingDict.reads += 1
        return super().__getitem__(key)


def build_index(n: int) -> SearchIndex:
    index = SearchIndex()
    for i in range(n):
        rare = f" zebra{i % 500}" if i % 100 == 0 else ""
        text = f"the user asked about topic {i % 50} and the answer was long{rare}"
        index.add(f"u{i % 200}:s{i % 7}:{i}", term_counts([text]))
    return index


def reads_for(index: SearchIndex, query: str, limit: int = 5, scope: str | None = None) -> int:
    index._docs = CountingDict(index._docs)
    CountingDict.reads = 0
    index.search(query_tokens(query), limit, scope)
    return CountingDict.reads


def test_rare_term_search_touches_only_its_postings() -> None:
    """A rare term's search reads a handful of documents out of 20,000."""
    index = build_index(20_000)
    assert reads_for(index, "zebra0") < 100


def test_rare_plus_common_term_does_not_scan_the_common_postings() -> None:
    """MaxScore: once the rare term fills the results, the common term's postings are skipped."""
    index = build_index(20_000)
    assert reads_for(index, "zebra1 the", limit=2) < 500


def test_small_scope_reads_only_its_own_documents() -> None:
    """A scoped search for a common term reads the scope's documents, not the global postings."""
    index = build_index(20_000)
    assert reads_for(index, "answer", scope="u3:s3") < 200


def test_deleted_documents_postings_are_compacted() -> None:
    """Deleting most documents shrinks postings lists instead of leaving tombstones forever."""
    index = SearchIndex()
    for i in range(1000):
        index.add(f"k{i}", {"common": 1, f"own{i}": 1})
    for i in range(990):
        index.remove(f"k{i}")
    assert len(index._postings["common"][0]) < 50
    assert "own0" not in index._postings
    assert index.search(["common"], 100) == [f"k{i}" for i in range(999, 989, -1)]


def test_vocabulary_forgets_terms_of_deleted_documents() -> None:
    """Prefix expansion never offers a term that no live document has."""
    index = SearchIndex()
    index.add("a", {"redis": 1})
    index.add("b", {"reddish": 1})
    assert index.search(["red"], 5) == ["b", "a"]
    index.remove("b")
    assert index._expand("red") == ["redis"]


@given(st.text())
def test_fast_tokenizer_matches_the_word_regex(text: str) -> None:
    """words() gives exactly the casefolded \\w+ runs, on ASCII and non-ASCII text alike."""
    import re

    from tta_dev_primitives.stores._text import words

    assert words(text) == re.findall(r"\w+", text.casefold())
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    assert words(ascii_text) == re.findall(r"\w+", ascii_text.casefold())
