"""Keyword search: the analyzer, the fields searched, and the BM25 index every backend uses.

Search runs in the process on every backend: in-process over the local store, and on Redis
over a replica of the namespace's index kept in sync from Redis (see ``stores._redis.replica``).
"""

from tta_dev_primitives.search._analyzer import MAX_QUERY_CHARS, MAX_QUERY_TERMS, Analyzer

__all__ = ["MAX_QUERY_CHARS", "MAX_QUERY_TERMS", "Analyzer"]
