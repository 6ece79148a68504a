"""The analyzer's laws: what becomes a term, the same way for memories, queries and backends."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search import MAX_QUERY_CHARS, Analyzer
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._stopwords import ENGLISH

ANALYZER = Analyzer()
words = st.one_of(
    st.sampled_from(sorted(ENGLISH)),
    st.sampled_from(["hiking", "hike", "hikes", "cars", "car", "accident", "Maria", "running"]),
    st.text(alphabet=string.ascii_letters + "\u00e9\u00df\u0130\u01310123456789_", max_size=12),
)
texts = st.lists(words, max_size=12).map(" ".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["content", "role", "note", "user_id", "x"]), inner)
    ),
    max_leaves=8,
)


@given(texts)
def test_no_stop_word_is_ever_a_term(text: str) -> None:
    """Stop words never reach the index, in memories or in queries."""
    assert not ENGLISH & set(ANALYZER.term_counts([text]))
    assert not ENGLISH & set(ANALYZER.query(text + ".").terms)


@given(texts)
def test_a_finished_query_has_exactly_the_terms_of_the_same_text_stored(text: str) -> None:
    """Query and memory analysis agree: a memory always matches its own text as a question."""
    stored = ANALYZER.term_counts([text])
    query = ANALYZER.query(text + "?")
    assert not query.prefix_last
    assert set(query.terms) == set(stored)
    assert len(query.terms) == len(set(query.terms))  # distinct, in first-seen order


@given(st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=10), max_size=10))
def test_case_does_not_matter(tokens: list[str]) -> None:
    """Upper, lower or mixed case give the same terms."""
    text = " ".join(tokens)
    assert ANALYZER.term_counts([text.upper()]) == ANALYZER.term_counts([text.lower()])


@pytest.mark.parametrize(
    ("a", "b"),
    [("hiking", "hike"), ("hikes", "hiked"), ("cars", "car"), ("accidents", "accident"),
     ("Running", "runs"), ("generously", "generous")],
)  # fmt: skip
def test_inflections_share_a_term(a: str, b: str) -> None:
    """Snowball stemming: inflected forms of a word meet at one term."""
    assert ANALYZER.term_counts([a]).keys() == ANALYZER.term_counts([b]).keys()


def test_only_an_unfinished_last_word_is_a_prefix() -> None:
    """'...acci' is still being typed; '...acci?', '...acci ' and short words are not prefixes."""
    assert ANALYZER.query("Maria's acci").prefix_last
    assert ANALYZER.query("Maria's acci").terms[-1] == "acci"
    for finished in ("Maria's acci?", "Maria's acci ", "Maria ca", "what is"):
        assert not ANALYZER.query(finished).prefix_last, finished
    assert not Analyzer(prefix="none").query("Maria's acci").prefix_last


@given(texts, st.text(max_size=50))
def test_only_the_first_characters_of_a_query_count(head: str, tail: str) -> None:
    """Whatever follows MAX_QUERY_CHARS changes nothing (prefix matching aside)."""
    whole = Analyzer(prefix="none")
    text = (head + " ") * (MAX_QUERY_CHARS // (len(head) + 1) + 1)
    assert whole.query(text + tail).terms == whole.query(text[:MAX_QUERY_CHARS]).terms


@given(json_values.filter(lambda v: isinstance(v, dict)))
def test_every_backend_gets_the_same_terms(value: dict[str, Any]) -> None:
    """Terms from the value (in-process) equal terms from its stored JSON (the Redis replica)."""
    for indexing in (Indexing(), Indexing(text_fields=("content", "note"))):
        assert indexing.payload_terms(encode_value(value)) == indexing.terms(value)
        assert indexing.payload_terms(json.dumps(value).encode()) == indexing.terms(value)


def test_switches_turn_each_part_off() -> None:
    """No stop words, no stemming: every word is its own term."""
    plain = Analyzer(stop_words=None, stemming=False)
    assert plain.term_counts(["The cars and the car"]) == {"the": 2, "cars": 1, "and": 1, "car": 1}
    mine = Analyzer(stop_words=["cars"], stemming=False)
    assert mine.term_counts(["The cars and the car"]) == {"the": 2, "and": 1, "car": 1}


def test_other_languages_stem_with_their_own_rules() -> None:
    """A German analyzer stems German words; an unknown language fails at construction."""
    german = Analyzer("german", stop_words=["der", "die", "das"])
    assert german.term_counts(["die Häuser"]) == german.term_counts(["das Haus"])
    with pytest.raises(ValueError, match="no Snowball stemmer for language 'klingon'"):
        Analyzer("klingon")
    with pytest.raises(ValueError, match="prefix"):
        Analyzer(prefix="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stop_words"):
        Analyzer(stop_words="german")  # type: ignore[arg-type]


async def test_a_memory_uses_the_analyzer_it_was_given() -> None:
    """MemoryPrimitive(analyzer=...) changes what matches; the default stems."""
    default, exact = MemoryPrimitive(), MemoryPrimitive(analyzer=Analyzer(stemming=False))
    for memory in (default, exact):
        await memory.add("k", {"content": "We went hiking"})
    assert await default.search("hike?") == [{"content": "We went hiking"}]
    assert await exact.search("hike?") == []
    with pytest.raises(TypeError, match="analyzer must be an Analyzer"):
        MemoryPrimitive(analyzer="english")  # type: ignore[arg-type]
