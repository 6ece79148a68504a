"""How text becomes search terms: one analyzer for memories and queries, on every backend.

Text is casefolded and split into runs of word characters (``\\w+``). Stop words are dropped
and the rest are stemmed with Snowball (PyStemmer), so "hiking" finds "hike" and "cars" finds
"car". A query is analysed the same way; if it ends inside a word (the user is still typing),
that last word also matches the terms it is a prefix of. Queries are bounded: only their first
``MAX_QUERY_CHARS`` characters are read, and the index scores at most ``MAX_QUERY_TERMS``
distinct terms (the rarest), so a pasted megabyte costs no more than a long paragraph. A memory
indexes at most ``MAX_DOC_TERMS`` distinct terms (its most frequent), so no add costs without
bound either.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._stopwords import ENGLISH

__all__ = ["MAX_DOC_TERMS", "MAX_QUERY_CHARS", "MAX_QUERY_TERMS", "Analyzer", "Query", "words"]

#: Characters of a query that are analysed; the rest is ignored.
MAX_QUERY_CHARS: Final = 10_000
#: Distinct query terms that are scored: the rarest ones, when a query has more.
MAX_QUERY_TERMS: Final = 32
#: Distinct terms indexed per memory: its most frequent ones, when it has more.
MAX_DOC_TERMS: Final = 10_000
#: A word still being typed matches as a prefix only from this many characters on.
MIN_PREFIX: Final = 3

_WORD = re.compile(r"\w+")
# For ASCII text, \w is [A-Za-z0-9_]: mapping every other byte to a space and splitting gives the
# same words as the regex, about twice as fast (this is on the path of every add).
_ASCII_WORD_BYTES = bytes(
    b if (b < 128 and chr(b).isalnum()) or b == ord("_") else ord(" ") for b in range(256)
)
_CACHE_SIZE = 200_000
_STOP: Final = object()  # the cache's mark for a stop word


def words(text: str) -> list[str]:
    r"""The casefolded runs of word characters (``\w+``) in ``text``, in order."""
    text = text.casefold()
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    return _WORD.findall(text)


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
    #: How hybrid fuses the two lists: min-max-normalised weighted sum, or reciprocal rank.
    fusion: Literal["weighted", "rrf"] = "weighted"

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
    """Casefolding, stop words and Snowball stemming, shared by indexing and querying.

    ``language`` is any Snowball language PyStemmer knows ("english", "german", ...).
    ``stop_words`` is ``"english"`` (the built-in list), your own words, or ``None`` for none.
    ``stemming=False`` keeps words whole. ``prefix="last"`` lets a query's unfinished last word
    match as a prefix; ``"none"`` matches whole terms only.
    """

    __slots__ = ("_cache", "_local", "language", "prefix", "stemming", "stop_words")

    def __init__(
        self,
        language: str = "english",
        *,
        stop_words: Literal["english"] | Iterable[str] | None = "english",
        stemming: bool = True,
        prefix: Literal["last", "none"] = "last",
    ) -> None:
        if not isinstance(language, str) or not language:
            raise InvalidArgumentError(
                f"language must be a Snowball language name, got {language!r}"
            )
        if prefix not in ("last", "none"):
            raise InvalidArgumentError(f"prefix must be 'last' or 'none', got {prefix!r}")
        if stop_words == "english":
            stops = ENGLISH
        elif stop_words is None:
            stops = frozenset()
        elif isinstance(stop_words, str):
            raise InvalidArgumentError(
                f"stop_words must be 'english', an iterable of words or None, got {stop_words!r}"
            )
        else:
            stops = frozenset(w for s in stop_words for w in words(str(s)))
        self.language = language
        self.stop_words: frozenset[str] = stops
        self.stemming = bool(stemming)
        self.prefix = prefix
        self._cache: dict[str, Any] = {}
        self._local = threading.local()  # PyStemmer objects are not thread-safe
        if self.stemming:
            self._stemmer()  # fail now, not at the first add, if the language is unknown

    def __repr__(self) -> str:
        stops = "english" if self.stop_words is ENGLISH else f"<{len(self.stop_words)} words>"
        return (
            f"Analyzer({self.language!r}, stop_words={stops}, stemming={self.stemming}, "
            f"prefix={self.prefix!r})"
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
            self._local.stemmer = stemmer
        return stemmer

    def _term(self, word: str) -> str | None:
        """The term for one casefolded word (None for a stop word), cached."""
        term = self._cache.get(word)
        if term is None:
            if word in self.stop_words:
                term = _STOP
            elif self.stemming:
                term = self._stemmer().stemWord(word)
            else:
                term = word
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[word] = term
        return None if term is _STOP else cast(str, term)

    def term_counts(self, strings: Iterable[str]) -> dict[str, int]:
        """Term frequencies over a memory's searchable strings."""
        counts: dict[str, int] = {}
        get, cache = counts.get, self._cache
        for word in words("\n".join(strings)):
            term = cache.get(word)
            if term is None:
                term = self._term(word)
                if term is None:
                    continue
            elif term is _STOP:
                continue
            counts[term] = get(term, 0) + 1
        if len(counts) > MAX_DOC_TERMS:
            # A memory's index entry has a bounded cost: keep its most frequent terms (ties in
            # order of first appearance: the sort is stable).
            ranked = sorted(counts.items(), key=lambda item: -item[1])
            counts = dict(ranked[:MAX_DOC_TERMS])
        return counts

    def query(self, text: str) -> Query:
        """The analysed form of a user's query (see the module docstring for its bounds)."""
        if not text.strip():
            return Query((), blank=True)
        truncated = len(text) > MAX_QUERY_CHARS
        text = text[:MAX_QUERY_CHARS]
        found = words(text)
        terms: dict[str, None] = {}
        for word in found:
            term = self._term(word)
            if term is not None:
                terms[term] = None
        prefix_last = False
        if (
            self.prefix == "last"
            and found
            and not truncated
            and (text[-1].isalnum() or text[-1] == "_")
            and len(last := found[-1]) >= MIN_PREFIX
            and last not in self.stop_words
        ):
            # The unfinished word, as typed (its stem may be shorter than what was typed, and
            # a prefix of the stem would match too much): last, so the index knows which.
            prefix = self._term(last) or last
            prefix = prefix if last.startswith(prefix) else last
            terms.pop(prefix, None)
            terms[prefix] = None
            prefix_last = True
        return Query(tuple(terms), prefix_last=prefix_last)
