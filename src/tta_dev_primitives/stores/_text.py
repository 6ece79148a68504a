"""Search text rules shared by every backend, so that all of them rank the same way.

Tokens are the lowercase (casefolded) runs of word characters in a value's string contents;
field names are not indexed. A query token matches a stored term equal to it or starting with
it. Ranking is BM25 with k1=1.2, b=0.75, where a query token's document frequency is the sum of
the frequencies of the terms it matches (capped at the number of memories): cheap, exact for
whole words, and the same on every backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

__all__ = [
    "K1",
    "B",
    "bm25",
    "idf",
    "normalize_scope",
    "query_tokens",
    "scope_prefixes",
    "term_counts",
    "token_order",
    "token_upper_bound",
    "words",
]

K1 = 1.2
B = 0.75

_WORD = re.compile(r"\w+")
# For ASCII text, \w is [A-Za-z0-9_]: mapping every other byte to a space and splitting gives the
# same words as the regex, about twice as fast (this is on the path of every add).
_ASCII_WORD_BYTES = bytes(
    b if (b < 128 and chr(b).isalnum()) or b == ord("_") else ord(" ") for b in range(256)
)


def words(text: str) -> list[str]:
    r"""The casefolded runs of word characters (``\w+``) in ``text``, in order."""
    text = text.casefold()
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    return _WORD.findall(text)


def term_counts(strings: Iterable[str]) -> dict[str, int]:
    """Term frequencies over the given strings (a value's string contents)."""
    counts: dict[str, int] = {}
    get = counts.get
    for word in words("\n".join(strings)):
        counts[word] = get(word, 0) + 1
    return counts


def query_tokens(query: str) -> list[str]:
    """The distinct tokens of a query, in the order they first appear."""
    return list(dict.fromkeys(words(query)))


def idf(df: int, n_docs: int) -> float:
    """BM25's inverse document frequency, with ``df`` capped at ``n_docs``."""
    df = min(df, n_docs)
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25(tf: int, doc_len: int, avg_len: float, token_idf: float) -> float:
    """One query token's contribution to a document's score."""
    norm = K1 * (1.0 - B + B * doc_len / avg_len) if avg_len > 0 else K1
    return token_idf * tf * (K1 + 1.0) / (tf + norm)


def token_upper_bound(token_idf: float) -> float:
    """The most one token can add to any score (BM25 saturates as tf grows)."""
    return token_idf * (K1 + 1.0)


def scope_prefixes(key: str) -> list[str]:
    """The scopes a key belongs to: every prefix that ends just before a ``:``.

    ``"u1:s1:ab"`` belongs to ``"u1"`` and ``"u1:s1"`` (and, as a key, to scope ``"u1:s1:ab"``),
    never to ``"u"`` or ``"u1:s"``: scopes match whole segments, so ``u1`` never sees ``u10``.
    """
    prefixes = []
    i = key.find(":", 1)
    while i != -1:
        prefixes.append(key[:i])
        i = key.find(":", i + 1)
    return prefixes


def normalize_scope(scope: str) -> str:
    """``"u1:s1:"`` and ``"u1:s1"`` name the same scope."""
    return scope[:-1] if scope.endswith(":") and len(scope) > 1 else scope


def token_order(upper_bounds: list[float]) -> list[int]:
    """The order in which query tokens are scored: highest upper bound first, then query order.

    Scores are float sums; adding contributions in one agreed order keeps equal documents exactly
    equal (so ties fall to recency) and makes every backend produce bit-identical scores.
    """
    return sorted(range(len(upper_bounds)), key=lambda i: -upper_bounds[i])
