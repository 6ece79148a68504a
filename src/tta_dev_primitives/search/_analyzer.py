"""How text becomes search terms: one analyzer for memories and queries, on every backend.

Text is split into words (runs of word characters), casefolded; stop words are set aside and
the rest are stemmed with Snowball (PyStemmer), so "hiking" finds "hike" and "cars" finds
"car". What people type is more than words (``_tokens.tokens_of``):

- an identifier (``snake_case``, ``camelCase``, ``os.path.join``) is a term whole and each of
  its parts a term too, so "get user name" finds ``getUserName``;
- a run of a script written without spaces becomes its characters and each pair of neighbours
  (1+2-grams: no dictionary, and "东京" finds "我在东京工作"): Chinese, Japanese, Korean, and
  Thai, Lao, Khmer and Myanmar, where a character is a letter with the marks written on it;
- an emoji is a term.

A stop word is indexed only where it is capitalised, as a name is ("Will", "The Who"), and
apart, under ``STOP_MARK`` (it never counts towards a memory's length). A query searches stop
words only when it has nothing else ("who is will?"), or the one capitalised inside it, like a
name ("The Who concert"); "what is the answer" searches "answer" alone. A query is analysed the
same way; if it ends inside a word (the user is still typing), that last word also matches the
terms it is a prefix of. Queries are bounded: only their first
``MAX_QUERY_CHARS`` characters are read, and only as far as they hold ``MAX_QUERY_LOOKUPS``
distinct terms (a run of Chinese holds two per character: its beginning, a character with the
pair it ends at a time), of which the index scores at most ``MAX_QUERY_TERMS`` (the rarest), so
a pasted megabyte costs no more than a long paragraph, on every backend. A memory
indexes at most ``MAX_DOC_TERMS`` distinct terms (its most frequent), so no add costs without
bound either.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any, Final, Literal

from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from tta_dev_primitives.search._query_terms import MAX_QUERY_LOOKUPS, beginning, fits
from tta_dev_primitives.search._stopwords import ENGLISH, stop_words_of
from tta_dev_primitives.search._tokens import (
    ASCII_TOKEN_BYTES,
    DROP_CHARS,
    JOIN_MARKS,
    capitalised,
    cluster_grams,
    dotted,
    fold,
    grams,
    identifier_parts,
    tokens_of,
)

__all__ = [
    "MAX_DOC_TERMS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_LOOKUPS",
    "MAX_QUERY_TERMS",
    "STOP_MARK",
    "Analyzer",
    "Query",
]

#: Characters of a query that are analysed; the rest is ignored.
MAX_QUERY_CHARS: Final = 10_000
#: Distinct query terms that are scored: the rarest ones, when a query has more.
MAX_QUERY_TERMS: Final = 32
#: Distinct terms indexed per memory: its most frequent ones, when it has more.
MAX_DOC_TERMS: Final = 10_000
#: A word still being typed matches as a prefix only from this many characters on.
MIN_PREFIX: Final = 3

_CACHE_SIZE = 200_000
#: Longer tokens are analysed each time, not cached: the cache is bounded by entries, and a
#: long word (a base64 blob, a pasted hash) would otherwise stay in it at twice its size.
_CACHE_TOKEN_CHARS = 64
_STOP: Final = object()  # the cache's mark for a stop word
#: The first character of a stop word's term: no word, identifier, CJK or emoji term has it.
STOP_MARK: Final = "'"


@dataclass(frozen=True, slots=True)
class Query:
    """An analysed query: distinct terms in query order; the last may match as a prefix.

    No terms and ``blank`` means "the most recent memories"; no terms otherwise means nothing
    can match (the query held only stop words or punctuation).
    """

    terms: tuple[str, ...]
    prefix_last: bool = False
    blank: bool = False
    #: An embedding of the question (1-D float32, ideally L2-normalised), for "semantic" and
    #: "hybrid" modes; ignored by "keyword".
    vector: Any = field(default=None, compare=False)
    mode: Literal["keyword", "semantic", "hybrid"] = "keyword"
    #: The semantic share of a hybrid score, 0..1: 0 ranks exactly as keyword, 1 as semantic.
    weight: float = 0.5
    #: How hybrid fuses the two lists: a weighted sum on a fixed scale, or reciprocal rank.
    fusion: Literal["weighted", "rrf"] = "weighted"
    #: Facet terms (``_facets``) a match must hold, every one: a field filter.
    filter: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a mode without the vector it needs, or a weight outside 0..1."""
        if self.mode not in ("keyword", "semantic", "hybrid"):
            raise InvalidArgumentError(f"mode must be keyword, semantic or hybrid: {self.mode!r}")
        if self.fusion not in ("weighted", "rrf"):
            raise InvalidArgumentError(f"fusion must be weighted or rrf: {self.fusion!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise InvalidArgumentError(f"weight must be within 0..1: {self.weight!r}")
        if self.mode != "keyword" and self.vector is None:
            raise InvalidArgumentError(f"mode {self.mode!r} needs a query vector")


class Analyzer:
    """How memories and queries become terms: words, identifiers, CJK, emoji, stop words.

    ``language`` is any Snowball language PyStemmer knows ("english", "german", ...).
    ``stop_words`` is ``"english"`` (the built-in list), your own words, or ``None`` for none.
    ``stemming=False`` keeps words whole. ``prefix="last"`` lets a query's unfinished last word
    match as a prefix; ``"none"`` matches whole terms only. ``identifiers=False`` keeps
    ``snake_case`` and ``camelCase`` whole only. ``cjk="runs"`` keeps a run of CJK (or Thai, Lao,
    Khmer, Myanmar) one term (for text already split into words, say); ``"grams"`` (the
    default) makes it 1+2-grams.
    """

    __slots__ = (
        "_cache",
        "_local",
        "cjk",
        "identifiers",
        "language",
        "prefix",
        "stemming",
        "stop_words",
    )

    def __init__(
        self,
        language: str = "english",
        *,
        stop_words: Literal["english"] | Iterable[str] | None = "english",
        stemming: bool = True,
        prefix: Literal["last", "none"] = "last",
        identifiers: bool = True,
        cjk: Literal["grams", "runs"] = "grams",
    ) -> None:
        if not isinstance(language, str) or not language:
            raise InvalidArgumentError(
                f"language must be a Snowball language name, got {language!r}"
            )
        if prefix not in ("last", "none"):
            raise InvalidArgumentError(f"prefix must be 'last' or 'none', got {prefix!r}")
        if cjk not in ("grams", "runs"):
            raise InvalidArgumentError(f"cjk must be 'grams' or 'runs', got {cjk!r}")
        for name, flag in (("stemming", stemming), ("identifiers", identifiers)):
            if not isinstance(flag, bool):  # "no" would have read as True
                raise InvalidArgumentTypeError(f"{name} must be True or False, got {flag!r}")
        if stop_words == "english":
            stops = ENGLISH
        elif stop_words is None:
            stops = frozenset()
        elif isinstance(stop_words, str):
            raise InvalidArgumentError(
                f"stop_words must be 'english', an iterable of words or None, got {stop_words!r}"
            )
        else:
            stops = stop_words_of(stop_words)
        self.language = language
        self.stop_words: frozenset[str] = stops
        self.stemming = stemming
        self.prefix = prefix
        self.identifiers = identifiers
        self.cjk = cjk
        self._cache: dict[str, tuple[str, ...]] = {}
        self._local = threading.local()  # PyStemmer objects are not thread-safe
        if self.stemming:
            self._stemmer()  # fail now, not at the first add, if the language is unknown

    def __repr__(self) -> str:
        stops = "english" if self.stop_words is ENGLISH else f"<{len(self.stop_words)} words>"
        return (
            f"Analyzer({self.language!r}, stop_words={stops}, stemming={self.stemming}, "
            f"prefix={self.prefix!r}, identifiers={self.identifiers}, cjk={self.cjk!r})"
        )

    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            import Stemmer  # PyStemmer: C Snowball, imported on first use

            try:
                stemmer = Stemmer.Stemmer(self.language)
            except KeyError:
                known = ", ".join(sorted(Stemmer.algorithms()))
                raise InvalidArgumentError(
                    f"no Snowball stemmer for language {self.language!r}; known: {known}"
                ) from None
            # Its own cache (a list per word, each tracked by the garbage collector) would
            # repeat ``_cache``'s, which every word passes first.
            stemmer.maxCacheSize = 0
            self._local.stemmer = stemmer
        return stemmer

    def _one(self, word: str) -> str:
        """The term of one casefolded word that is not a stop word: stemmed (or as is)."""
        return self._stemmer().stemWord(word) if self.stemming else word

    def _word(self, token: str) -> tuple[str, ...]:
        """The terms of a word or identifier as written (whole first, then its parts), cached.

        A stop word is a term only written capitalised, as a name is ("Will", "The Who"), and
        marked; "I" and "A" never. As an identifier's part it is no term.
        """
        terms = self._cache.get(token)
        if terms is None:
            whole = fold(token)
            if whole in self.stop_words:
                terms = (STOP_MARK + whole,) if capitalised(token) else ()
            else:
                stops = self.stop_words
                parts = identifier_parts(token) if self.identifiers else []
                terms = (self._one(whole), *(self._one(p) for p in parts if p not in stops))
            self._remember(token, terms)
        return terms

    def _remember(self, token: str, terms: tuple[str, ...]) -> None:
        """Cache a short token's terms (a long one is not kept: see ``_CACHE_TOKEN_CHARS``)."""
        if len(token) > _CACHE_TOKEN_CHARS:
            return
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = terms

    def _ascii(self, token: str) -> tuple[str, ...]:
        """The terms of a token of ASCII text split at spaces (dots may end or double it)."""
        if "." not in token:
            return self._word(token)
        terms = self._cache.get(token)
        if terms is None:
            terms = tuple(t for piece in dotted(token) for t in self._word(piece))
            self._remember(token, terms)
        return terms

    def _terms_of(self, kind: int, token: str) -> Iterable[str]:
        """The terms of one token of ``tokens``."""
        if kind == 0:
            return self._word(token)
        if self.cjk == "runs" or kind == 2:
            return (token,)
        return grams(token) if kind == 1 else cluster_grams(token)

    def terms(self, text: str) -> list[str]:
        """Every term of ``text`` as a memory indexes it, in order, repeats included."""
        out: list[str] = []
        for kind, token in tokens_of(text):
            out.extend(self._terms_of(kind, token))
        return out

    def term_counts(self, strings: Iterable[str]) -> dict[str, int]:
        """Term frequencies over a memory's searchable strings."""
        counts: dict[str, int] = {}
        get, cache = counts.get, self._cache
        text = "\n".join(strings)
        if text.isascii():  # the common case, without the general tokenizer's tuples
            for token in text.translate(ASCII_TOKEN_BYTES).split():
                terms = cache.get(token)
                if terms is None:
                    terms = self._ascii(token)
                for term in terms:
                    counts[term] = get(term, 0) + 1
        elif len(text) <= 4096:  # (a loop costs less than a Counter's set-up on short text)
            for kind, token in tokens_of(text):
                for term in self._terms_of(kind, token):
                    counts[term] = get(term, 0) + 1
        else:  # (counted in C: a CJK memory has a term per character and per pair)
            terms_of = self._terms_of
            counts = dict(Counter(chain.from_iterable(terms_of(*kt) for kt in tokens_of(text))))
        if len(counts) > MAX_DOC_TERMS:
            # A memory's index entry has a bounded cost: keep its most frequent terms.
            counts = most_frequent(counts, MAX_DOC_TERMS)
        return counts

    def query(self, text: str) -> Query:
        """The analysed form of a user's query (see the module docstring for its bounds)."""
        if not text.strip():
            return Query((), blank=True)
        truncated = len(text) > MAX_QUERY_CHARS
        text = text[:MAX_QUERY_CHARS]
        tokens = tokens_of(text)
        terms: dict[str, None] = {}
        stops: dict[str, None] = {}
        for i, (kind, token) in enumerate(tokens):
            if kind == 0 and (word := fold(token)) in self.stop_words:
                # Searched when the query has nothing else, or when it reads like a name.
                if i and capitalised(token):
                    if len(terms) == MAX_QUERY_LOOKUPS and STOP_MARK + word not in terms:
                        truncated = True
                        break
                    terms[STOP_MARK + word] = None
                else:
                    stops[STOP_MARK + word] = None
                continue
            own = self._terms_of(kind, token)
            if not isinstance(own, tuple):
                own = tuple(own)
            if len(terms) + len(own) > MAX_QUERY_LOOKUPS and not fits(terms, own):
                # Read no further than the beginning that holds ``MAX_QUERY_LOOKUPS`` terms.
                runs = self.cjk == "runs"
                terms.update(dict.fromkeys(beginning(kind, token, own, terms, runs=runs)))
                truncated = True
                break
            terms.update(dict.fromkeys(own))
        prefix_last = False
        if (
            self.prefix == "last"
            and tokens
            and tokens[-1][0] == 0
            and not truncated
            # (A point after the last letter is dropped: "שָׁלוֹ" is unfinished, as "שלו" is.)
            and (end := text.rstrip(DROP_CHARS)[-1:])
            and (end.isalnum() or end == "_" or end in JOIN_MARKS)
        ):
            token = tokens[-1][1]
            parts = identifier_parts(token) if self.identifiers else []
            last = parts[-1] if parts else fold(token)
            if len(last) >= MIN_PREFIX and last not in self.stop_words:
                # The unfinished word, as typed (its stem may be shorter than what was typed,
                # and a prefix of the stem would match too much): last, so the index knows.
                prefix = self._one(last)
                prefix = prefix if last.startswith(prefix) else last
                # (No room for it as a term of its own: the word is searched by its stem.)
                if prefix in terms or len(terms) < MAX_QUERY_LOOKUPS:
                    terms.pop(prefix, None)
                    terms[prefix] = None
                    prefix_last = True
        # Only stop words ("Who is Will?"): search them rather than nothing.
        return Query(tuple(terms or stops), prefix_last=prefix_last)


def most_frequent(counts: dict[str, int], n: int) -> dict[str, int]:
    """The ``n`` most frequent terms of ``counts``, stop words last, ties in order of first
    appearance, most frequent first: a stable sort by (stop word, -count), cut at ``n``. Only the
    terms kept are sorted, so the loop can serve other tasks meanwhile (a sort of all of a large
    memory's million terms is one C call that holds the GIL for half a second)."""
    stops = {t: c for t, c in counts.items() if t[0] == STOP_MARK}
    words = {t: c for t, c in counts.items() if t[0] != STOP_MARK} if stops else counts
    kept: list[str] = []
    for group in (words, stops):
        room = n - len(kept)
        if room <= 0:
            break
        if len(group) <= room:
            kept += sorted(group, key=group.__getitem__, reverse=True)  # stable, reversed too
            continue
        # The lowest count kept: every term above it, and the first ones at it.
        by_count: Counter[int] = Counter()
        values = list(group.values())
        for start in range(0, len(values), 65536):  # (short C calls: see above)
            by_count.update(values[start : start + 65536])
        above = 0
        for floor in sorted(by_count, reverse=True):
            if above + by_count[floor] >= room:
                break
            above += by_count[floor]
        top = [t for t, c in group.items() if c > floor]
        kept += sorted(top, key=group.__getitem__, reverse=True)
        kept += islice((t for t, c in group.items() if c == floor), room - above)
    return {t: counts[t] for t in kept}
