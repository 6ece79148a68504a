"""The analyzer's laws: what becomes a term, the same way for memories, queries and backends."""

from __future__ import annotations

import itertools
import json
import random
import re
import string
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search import MAX_QUERY_CHARS, Analyzer
from tta_dev_primitives.search._analyzer import MAX_DOC_TERMS, MAX_QUERY_LOOKUPS, STOP_MARK
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._stopwords import ENGLISH
from tta_dev_primitives.search._tokens import identifier_parts

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


def content(terms: Any) -> set[str]:
    """The terms that are not (marked) stop words."""
    return {t for t in terms if not t.startswith(STOP_MARK)}


@given(texts)
def test_stop_words_are_terms_only_under_their_mark(text: str) -> None:
    """A stop word typed in the text is indexed only marked (and capitalised), so it never
    meets a content word. (A content word may still stem to a stop word's form: "ams" -> "am".)"""
    words_typed = re.findall(r"\w+", text)
    typed = ENGLISH & {p.casefold() for w in words_typed for p in [w, *identifier_parts(w)]}
    assert not typed & set(ANALYZER.term_counts([text]))
    assert not typed & set(ANALYZER.query(text + ".").terms)
    for term in ANALYZER.term_counts([text]):
        assert not term.startswith(STOP_MARK) or term[1:] in ENGLISH


@given(texts)
def test_a_finished_query_has_exactly_the_terms_of_the_same_text_stored(text: str) -> None:
    """Query and memory analysis agree: a memory always matches its own text as a question,
    by its content words, or by its stop words when it has nothing else."""
    stored = ANALYZER.term_counts([text])
    query = ANALYZER.query(text + "?")
    assert not query.prefix_last
    assert content(query.terms) == content(stored)
    if not content(stored):  # only stop words: the query searches them all
        assert set(stored) <= set(query.terms)
        assert {t[1:] for t in query.terms} <= ENGLISH
    assert len(query.terms) == len(set(query.terms))  # distinct, in first-seen order


@given(st.text(max_size=40))
def test_terms_are_never_empty_and_free_of_whitespace(text: str) -> None:
    """Any text, any script: every term is a non-empty string without whitespace."""
    for term in ANALYZER.term_counts([text]):
        assert term
        assert not any(c.isspace() for c in term)


@given(texts, st.text(max_size=20))
def test_ascii_and_unicode_text_split_the_same_way(ascii_part: str, other: str) -> None:
    """The fast ASCII path and the general one find the same terms, text by text."""
    ascii_text = ascii_part.encode("ascii", "ignore").decode()
    joined = ANALYZER.terms(ascii_text + " \u00e9 " + other)
    assert joined == ANALYZER.terms(ascii_text) + ANALYZER.terms("\u00e9 " + other)


@pytest.mark.parametrize(
    ("memory", "question"),
    [("call getUserName() first", "get user name"), ("set MAX_RETRIES to 5", "max retries"),
     ("use os.path.join here", "path join"), ("the HTTPServer class", "http server"),
     ("call getUserName() first", "getUserName"), ("set MAX_RETRIES to 5", "MAX_RETRIES"),
     ("call get_user_name()", "get user name")],
)  # fmt: skip
def test_identifiers_are_found_by_their_parts_and_whole(memory: str, question: str) -> None:
    """snake_case, camelCase and dotted names: their parts are terms, and so is the whole."""
    assert content(ANALYZER.query(question + "?").terms) <= set(ANALYZER.term_counts([memory]))


def test_cjk_runs_become_character_grams() -> None:
    """Chinese, Japanese and Korean text: characters and neighbouring pairs, so words inside
    a sentence are found without a dictionary."""
    assert ANALYZER.terms("苹果") == ["苹", "果", "苹果"]
    pairs = [("我喜欢吃苹果", "苹果"), ("我在东京工作", "东京"), ("東京に行きました", "東京"),
             ("오늘 날씨가 좋네요", "날씨")]  # fmt: skip
    for memory, question in pairs:
        assert set(ANALYZER.query(question).terms) <= set(ANALYZER.term_counts([memory]))
    assert Analyzer(cjk="runs").terms("我喜欢吃苹果") == ["我喜欢吃苹果"]


def test_scripts_written_without_spaces_become_cluster_grams() -> None:
    """Thai, Lao, Khmer and Myanmar: \\w split them at every vowel sign and tone mark, so
    "หมอฟัน" (dentist) was "หมอฟ" + "น" and inside a sentence "ไปหาหมอฟ" + "น", and the word
    never found the sentence. A run is cut like a CJK run, into clusters (a letter with the
    marks written on it) and pairs of neighbouring clusters; no term is a mark alone."""
    assert ANALYZER.terms("หมอฟัน") == ["ห", "ม", "อ", "ฟั", "น", "หม", "มอ", "อฟั", "ฟัน"]
    assert ANALYZER.terms("ที่ดี") == ["ที่", "ดี", "ที่ดี"]
    pairs = [("พรุ่งนี้ต้องไปหาหมอฟันที่คลินิก", "หมอฟัน"), ("ຂ້ອຍມັກກິນເຂົ້າໜຽວ", "ເຂົ້າໜຽວ"),
             ("ខ្ញុំចូលចិត្តផឹកកាហ្វេ", "កាហ្វេ"), ("နောက်အပတ် ရန်ကုန်ကို သွားမယ်", "ရန်ကုန်")]  # fmt: skip
    for memory, question in pairs:
        assert set(ANALYZER.query(question).terms) <= set(ANALYZER.term_counts([memory]))
        terms = ANALYZER.terms(memory)
        assert not [t for t in terms if unicodedata.category(t[0]).startswith("M")], memory
    # Beside other scripts and digits each keeps its own way; cjk="runs" keeps a run whole.
    assert ANALYZER.terms("iPhone รุ่น 15") == ["iphon", "phone", "รุ่", "น", "รุ่น", "15"]
    assert Analyzer(cjk="runs").terms("ผมชอบกินข้าว ok") == ["ผมชอบกินข้าว", "ok"]


async def test_a_thai_memory_is_found_by_a_word_inside_it() -> None:
    """A Thai question finds the memory holding its words, not one sharing letters."""
    memory = MemoryPrimitive()
    await memory.add("a", {"content": "พรุ่งนี้บ่ายสามโมงต้องไปหาหมอฟันที่คลินิก"})
    await memory.add("b", {"content": "คุณหมอบอกให้พักผ่อนและดื่มน้ำเยอะๆ"})
    await memory.add("c", {"content": "วันนี้อากาศร้อนมาก ฝนไม่ตกเลยทั้งวัน"})
    found = await memory.search("นัดหมอฟันวันไหน", 2)
    assert found[0] == {"content": "พรุ่งนี้บ่ายสามโมงต้องไปหาหมอฟันที่คลินิก"}


def test_a_run_of_any_length_gives_every_character_and_pair() -> None:
    """A run longer than a page of text (a pasted book without punctuation) is cut the same
    way: every character, then every neighbouring pair, in order."""
    for run in ("我们在花园里种了番茄" * 1000, "東京" * 4097 + "に"):
        chars = list(run)
        assert ANALYZER.terms(run) == chars + [a + b for a, b in itertools.pairwise(chars)]
    thai = "ที่ดีหมอฟัน" * 1500  # 7 clusters each time
    units = ["ที่", "ดี", "ห", "ม", "อ", "ฟั", "น"] * 1500
    assert ANALYZER.terms(thai) == units + [a + b for a, b in itertools.pairwise(units)]


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 3))
def test_a_memory_keeps_its_most_frequent_terms_stop_words_last(seed: int, mix: int) -> None:
    """Past MAX_DOC_TERMS distinct terms, a memory keeps what a stable sort by (stop word, most
    frequent first) puts first: ties in order of first appearance."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}x" for i in range(MAX_DOC_TERMS + rng.randint(500, 3000))]
    if mix & 1:  # names that are stop words: kept last
        vocabulary += ["Will", "The", "Who", "May"]
    if mix & 2:  # Chinese: its characters and pairs
        vocabulary += ["花园番茄罗勒", "我们在东京工作"]
    text = " ".join(rng.choice(vocabulary) for _ in range(4 * len(vocabulary)))
    counts: dict[str, int] = {}
    for term in ANALYZER.terms(text):
        counts[term] = counts.get(term, 0) + 1
    assert len(counts) > MAX_DOC_TERMS  # (below it, every term is kept, in order)
    ranked = sorted(counts.items(), key=lambda kv: (kv[0].startswith(STOP_MARK), -kv[1]))
    assert list(ANALYZER.term_counts([text]).items()) == ranked[:MAX_DOC_TERMS]


def test_words_keep_their_combining_marks() -> None:
    """Python's \\w leaves out combining marks: Hindi words split at their vowel signs ("दुनिया"
    became three letters). Indic words stay whole (a danda still ends one); an accent typed as
    its own character is the accented letter; Hebrew and Arabic points, mostly left out when
    people type, are dropped, so a pointed word finds the same word unpointed."""
    assert ANALYZER.terms("नमस्ते दुनिया। किताब पढ़ना") == ["नमस्ते", "दुनिया", "किताब", "पढ़ना"]
    assert ANALYZER.terms("বাংলা ভাষা தமிழ்") == ["বাংলা", "ভাষা", "தமிழ்"]
    assert ANALYZER.terms("cafe\u0301") == ANALYZER.terms("café") == ["café"]
    assert ANALYZER.terms("שָׁלוֹם") == ANALYZER.terms("שלום") == ["שלום"]
    assert ANALYZER.terms("مُحَمَّد") == ANALYZER.terms("محمد") == ["محمد"]
    assert ANALYZER.query("मेरी किताब कहाँ").terms == ("मेरी", "किताब", "कहाँ")
    assert ANALYZER.query("मेरी किताब कहाँ").prefix_last  # still being typed
    # Casefolding gives Turkish "İ" a combining dot: dropped, so "İstanbul" finds "istanbul".
    assert ANALYZER.terms("İstanbul İSTANBUL") == ANALYZER.terms("istanbul ISTANBUL")
    # A pointed unfinished word is unfinished as unpointed: its last point is not its end.
    assert ANALYZER.query("שָׁלוֹ") == ANALYZER.query("שלו")
    assert ANALYZER.query("שָׁלוֹ").prefix_last


async def test_hindi_and_pointed_hebrew_are_found_by_their_words() -> None:
    """A Hindi memory is found by one of its words, and a pointed Hebrew one unpointed."""
    memory = MemoryPrimitive()
    await memory.add("a", {"content": "मैंने कल एक नई किताब खरीदी"})
    await memory.add("b", {"content": "מָה שְׁלוֹמְךָ הַיּוֹם"})
    await memory.add("c", {"content": "a book about Paris"})
    assert await memory.search("नई किताब?", 1) == [{"content": "मैंने कल एक नई किताब खरीदी"}]
    assert await memory.search("שלומך?", 1) == [{"content": "מָה שְׁלוֹמְךָ הַיּוֹם"}]


# Text mixing letters with combining marks that join their word (Latin accents, Devanagari
# signs), Hebrew and Arabic points that are dropped, Thai (cut into clusters), CJK, dots.
_MARKS = "\u0301\u0308\u0915\u093f\u094d\u05e9\u05b8\u05c1\u0645\u064f\u0e01\u0e34\u6211\u0130"
_MARKED = st.text(alphabet=st.sampled_from("ab .\u00e9e_1" + _MARKS), max_size=30)


@settings(max_examples=300)
@given(st.one_of(_MARKED, st.text()))
def test_text_without_marks_splits_as_text_with_them_would(text: str) -> None:
    """The tokenizers skip their mark-handling passes for text that holds no mark (the
    alternation of the marks' regex and a translation of every character doubled the cost of
    non-ASCII memories): what they return is what the full passes give, for any text."""
    from tta_dev_primitives.search._tokens import (
        DROP_CHARS,
        WORD,
        fold,
        normal,
        token_patterns,
        tokens_of,
        words,
    )

    drop = dict.fromkeys(map(ord, DROP_CHARS))  # every point, translated away
    composed = unicodedata.normalize("NFC", text).translate(drop)
    assert normal(text) == composed
    if not text.isascii():
        found = token_patterns()[0].finditer(composed)
        want = [(m.lastindex - 1, m.group(m.lastindex)) for m in found]
        assert tokens_of(text) == want
    folded = fold(text)
    if not folded.isascii():
        assert words(text) == WORD.findall(unicodedata.normalize("NFC", folded).translate(drop))


def test_an_emoji_is_a_term() -> None:
    """Emoji are terms of their own; skin tones and joiners are not."""
    assert ANALYZER.term_counts(["party 🎉🎉 👍🏽"]) == {"parti": 1, "🎉": 2, "👍": 1}
    assert ANALYZER.query("🎉").terms == ("🎉",)


def test_a_query_of_only_stop_words_searches_them() -> None:
    """'Who is Will?' has nothing but stop words: it searches them instead of nothing."""
    assert ANALYZER.query("who is will?").terms == ("'who", "'is", "'will")
    assert ANALYZER.query("what is the answer?").terms == ("answer",)


def test_a_capitalised_stop_word_inside_a_query_is_a_name() -> None:
    """'The Who concert', 'Who is Will?': a capitalised stop word past the first is kept."""
    assert ANALYZER.query("The Who concert?").terms == ("'who", "concert")
    assert ANALYZER.query("Who is Will?").terms == ("'will",)
    assert ANALYZER.query("Can I go?").terms == ("go",)  # "I" is no name


async def test_stop_word_names_are_found() -> None:
    """Memories about Will or The Who are found by questions made of stop words."""
    memory = MemoryPrimitive()
    await memory.add("a", {"content": "Will fixed the garage door"})
    await memory.add("b", {"content": "We saw The Who live in 1982"})
    await memory.add("c", {"content": "A concert of chamber music"})
    assert (await memory.search("Who is Will?", 1)) == [{"content": "Will fixed the garage door"}]
    found = await memory.search("The Who concert?", 2)
    assert {"content": "We saw The Who live in 1982"} in found


@given(st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=10), max_size=10))
def test_case_does_not_matter(tokens: list[str]) -> None:
    """Upper, lower or mixed case give the same terms (bar stop words written like names)."""
    text = " ".join(tokens)
    assert content(ANALYZER.term_counts([text.upper()])) == content(
        ANALYZER.term_counts([text.lower()])
    )


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


@settings(deadline=None)  # 10,000 characters analysed twice an example: slow on a busy machine
@given(texts, st.text(max_size=50))
def test_only_the_first_characters_of_a_query_count(head: str, tail: str) -> None:
    """Whatever follows MAX_QUERY_CHARS changes nothing (prefix matching aside)."""
    whole = Analyzer(prefix="none")
    text = (head + " ") * (MAX_QUERY_CHARS // (len(head) + 1) + 1)
    assert whole.query(text + tail).terms == whole.query(text[:MAX_QUERY_CHARS]).terms


def test_a_long_query_reads_only_as_far_as_its_lookups() -> None:
    """A pasted page is read only as far as it holds MAX_QUERY_LOOKUPS distinct terms (a CJK
    run a character with the pair it ends at a time, in ``grams``' order): its terms are those
    of that beginning, whatever follows, and its last word is no longer unfinished."""
    chinese = "".join(chr(0x4E00 + i * 3) for i in range(10_000))
    query = ANALYZER.query(chinese)
    assert MAX_QUERY_LOOKUPS - 1 <= len(query.terms) <= MAX_QUERY_LOOKUPS
    read = sum(len(t) == 1 for t in query.terms)  # distinct characters: each is read
    assert query.terms == ANALYZER.query(chinese[:read]).terms
    assert ANALYZER.query(chinese[:read] + "后来").terms == query.terms
    thai = "ภาษาไทยเป็นภาษาที่มีระดับเสียง" + "".join(
        chr(0x0E01 + i % 46) + chr(0x0E01 + (i * 7) % 46) for i in range(3_000)
    )
    assert len(ANALYZER.query(thai).terms) <= MAX_QUERY_LOOKUPS
    assert ANALYZER.query(thai).terms[:3] == ANALYZER.query("ภาษาไทย").terms[:3]
    letters = itertools.product("klmnprstvz", repeat=4)
    words = ["zq" + "".join(w) for w in itertools.islice(letters, 2 * MAX_QUERY_LOOKUPS)]
    typed = " ".join(words) + " garag"
    assert not ANALYZER.query(typed).prefix_last
    head = ANALYZER.query(" ".join(words[:MAX_QUERY_LOOKUPS]) + ".")
    assert ANALYZER.query(typed).terms == head.terms
    # An unfinished last word whose stem is no prefix of it ("happi" of "happy") is a term of
    # its own beside the stem: with no room for it, only the stem is searched.
    full = ANALYZER.query(" ".join(words[: MAX_QUERY_LOOKUPS - 1]) + " happy")
    assert len(full.terms) == MAX_QUERY_LOOKUPS
    assert full.terms[-1] == "happi"
    assert not full.prefix_last
    # An identifier of more parts than the room left: its first ones.
    long = "_".join(words[-200:])
    query = ANALYZER.query(" ".join(words[: MAX_QUERY_LOOKUPS - 50]) + " " + long)
    assert len(query.terms) == MAX_QUERY_LOOKUPS
    assert query.terms[-50:] == ANALYZER.query(long).terms[:50]


@given(texts)
def test_no_query_looks_up_more_terms_than_the_bound(text: str) -> None:
    """However long, a query holds at most MAX_QUERY_LOOKUPS distinct terms."""
    assert len(ANALYZER.query(text * 40).terms) <= MAX_QUERY_LOOKUPS


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
    assert ANALYZER.term_counts(["The cars and the car"]) == {"'the": 1, "car": 2}
    whole = Analyzer(identifiers=False)
    assert whole.terms("getUserName MAX_RETRIES") == ["getusernam", "max_retri"]


def test_other_languages_stem_with_their_own_rules() -> None:
    """A German analyzer stems German words; an unknown language fails at construction."""
    german = Analyzer("german", stop_words=["der", "die", "das"])
    assert content(german.term_counts(["die Häuser"])) == content(german.term_counts(["das Haus"]))
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


def test_long_words_do_not_stay_in_memory_once_analysed() -> None:
    """The analyzer's word cache is bounded by entries: each distinct long word (a pasted
    hash, a base64 blob) stayed in it at twice its size, up to 200,000 of them (review R28:
    300 one-megabyte words added and deleted kept 593 MB)."""
    import gc
    import tracemalloc

    analyzer = Analyzer()
    rng = random.Random(7)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            word = "".join(rng.choices(string.ascii_lowercase, k=20_000))
            analyzer.terms(word)
            analyzer.query(word + " and more")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2_000_000, kept  # 300 words of 20 kB: 12 MB and more when cached


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"stop_words": 123}, "stop_words"),
        ({"stop_words": b"the"}, "stop_words"),  # read as the words "116", "104", "101"
        ({"stop_words": ["the", 5]}, "stop_words"),
        ({"stemming": "no"}, "stemming"),  # read as True
        ({"identifiers": "false"}, "identifiers"),
    ],
)
def test_options_of_the_wrong_type_are_refused_by_name(options: dict[str, Any], named: str) -> None:
    """Review R28: these raised a bare TypeError, or were silently read as something else."""
    with pytest.raises(InvalidArgumentTypeError, match=named):
        Analyzer(**options)
