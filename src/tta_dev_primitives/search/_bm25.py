"""BM25 (k1=1.5, b=0.75, Lucene's idf): the one scoring rule every backend uses.

The arithmetic is written once here, in an order that numpy's element-wise evaluation repeats
exactly, so a document scored from the postings (vectorised) and from its own terms (a small
scope) gets the same float, bit for bit.

k1 and b were measured against k1 1.2 and b 0.5 on documents and conversation turns
(``benchmarks/bench_hybrid.py``): b 0.5 helps short turns and the top-10 overlap with the Redis
Query Engine (whose BM25STD has k1 1.2, b 0.5), but costs documents; so does k1 1.2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["K1", "B", "bm25", "ceiling", "idf", "token_order"]

K1 = 1.5
B = 0.75


def idf(df: int, n_docs: int) -> float:
    """Inverse document frequency, with ``df`` capped at ``n_docs``; always positive."""
    df = min(df, n_docs)
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25(tf: Any, doc_len: Any, avg_len: float, token_idf: float) -> Any:
    """One term's contribution; works on floats and on numpy arrays alike."""
    norm = K1 * (1.0 - B + B * doc_len / avg_len) if avg_len > 0 else K1
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
