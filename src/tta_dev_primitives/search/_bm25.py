"""BM25 (k1=1.5, Lucene's idf, b by text length): the one scoring rule every backend uses.

The arithmetic is written once here, in an order that numpy's element-wise evaluation repeats
exactly, so a document scored from the postings (vectorised) and from its own terms (a small
scope) gets the same float, bit for bit.

k1 and b were measured on documents and on conversation turns (``benchmarks/bench_hybrid.py``).
b 0.5 helps short turns: +.016 to +.022 nDCG@10 on the three scoped conversation sets, level
on the unscoped one. But it costs documents .004 (Cranfield), where b 0.75 is best. So b
follows the average length of what is searched (the scope's when scoped):

- 0.5 for texts of ``SHORT_TEXT`` terms or fewer on average (turns, notes: 6-11 in the sets);
- 0.75 from ``LONG_TEXT`` on (Cranfield's abstracts: 103);
- linear in between.

k1 1.2 costs documents as well.

An unfinished last word matches its completions too, each occurrence counting
``COMPLETION_TF`` of one of the word itself: "my cat" ranks "cat" above "category", and "acci"
still finds "accident" (a power of two, so sums stay exact in any order, on every backend).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "COMPLETION_TF",
    "K1",
    "LONG_TEXT",
    "SHORT_B",
    "SHORT_TEXT",
    "B",
    "bm25",
    "ceiling",
    "idf",
    "length_b",
    "token_order",
]

K1 = 1.5
COMPLETION_TF = 0.5  #: what an occurrence of an unfinished word's completion counts
B = 0.75  #: b for long texts: ``LONG_TEXT`` terms or more on average
SHORT_B = 0.5  #: b for short texts: ``SHORT_TEXT`` terms or fewer on average
SHORT_TEXT, LONG_TEXT = 16.0, 32.0


def idf(df: int, n_docs: int) -> float:
    """Inverse document frequency, with ``df`` capped at ``n_docs``; always positive."""
    df = min(df, n_docs)
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def length_b(avg_len: float) -> float:
    """BM25's b where texts average ``avg_len`` terms: how much a text's length counts.

    A turn of 3 terms against one of 12 says little about verbosity, so short texts get a
    weaker length normalisation than long ones.
    """
    if avg_len <= SHORT_TEXT:
        return SHORT_B
    if avg_len >= LONG_TEXT:
        return B
    return SHORT_B + (B - SHORT_B) * (avg_len - SHORT_TEXT) / (LONG_TEXT - SHORT_TEXT)


def bm25(tf: Any, doc_len: Any, avg_len: float, token_idf: float, b: float) -> Any:
    """One term's contribution; works on floats and on numpy arrays alike. ``b`` is
    ``length_b(avg_len)``, taken once per search rather than once per document and term."""
    norm = K1 * (1.0 - b + b * doc_len / avg_len) if avg_len > 0 else K1
    return token_idf * tf * (K1 + 1.0) / (tf + norm)


def ceiling(idfs: Sequence[float]) -> float:
    """The BM25 no document reaches for a query with these term idfs: each term's share tends
    to ``idf * (K1 + 1)`` as its frequency grows, whatever the length. Hybrid's keyword scale."""
    return (K1 + 1.0) * math.fsum(idfs)


def token_order(idfs: list[float]) -> list[int]:
    """The order in which query terms are added up: rarest first, then query order.

    Float sums depend on order; one agreed order keeps equal documents exactly equal (so ties
    fall to recency) and makes every backend produce the same scores.
    """
    return sorted(range(len(idfs)), key=lambda i: -idfs[i])
