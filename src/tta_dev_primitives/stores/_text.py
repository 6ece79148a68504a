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
from collections import Counter
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
]

K1 = 1.2
B = 0.75

_WORD = re.compile(r"\w+")


def term_counts(strings: Iterable[str]) -> Counter[str]:
    """Term frequencies over the given strings (a value's string contents)."""
    counts: Counter[str] = Counter()
    for text in strings:
        counts.update(_WORD.findall(text.casefold()))
    return counts


def query_tokens(query: str) -> list[str]:
    """The distinct tokens of a query, in the order they first appear."""
    return list(dict.fromkeys(_WORD.findall(query.casefold())))


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
    return [key[:i] for i, ch in enumerate(key) if ch == ":" and i > 0]


def normalize_scope(scope: str) -> str:
    """``"u1:s1:"`` and ``"u1:s1"`` name the same scope."""
    return scope[:-1] if scope.endswith(":") and len(scope) > 1 else scope


def token_order(upper_bounds: list[float]) -> list[int]:
    """The order in which query tokens are scored: highest upper bound first, then query order.

    Scores are float sums; adding contributions in one agreed order keeps equal documents exactly
    equal (so ties fall to recency) and makes every backend produce bit-identical scores.
    """
    return sorted(range(len(upper_bounds)), key=lambda i: -upper_bounds[i])
