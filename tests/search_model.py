"""A deliberately naive model of memory: a dict, an LRU list and a brute-force search.

It re-derives the documented rules (searched fields, the last word as a prefix, BM25 with a
scope's own statistics, token order, segment scopes, recency ties) over every stored value on
every query, so the real index can be checked against it. Words become terms through the
shared ``Analyzer``, whose own laws are tested in ``test_analyzer.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tta_dev_primitives.search import Analyzer
from tta_dev_primitives.search._analyzer import STOP_MARK
from tta_dev_primitives.search._bm25 import COMPLETION_TF, bm25, idf, length_b

ANALYZER = Analyzer()
METADATA = {"role", "type", "kind", "id", "status", "timestamp"}


def strings(value: Any) -> list[str]:
    """Every string in the value except those under metadata-like field names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [
            s
            for k, v in value.items()
            if not (k in METADATA or k.endswith(("_id", "_at")))
            for s in strings(v)
        ]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def query_terms(query: str) -> tuple[list[str], bool]:
    """The query's distinct terms, and whether the last one is an unfinished word (a prefix)."""
    analysed = ANALYZER.query(query)
    return list(analysed.terms), analysed.prefix_last


def in_scope(key: str, scope: str | None) -> bool:
    """docs/memory.md: scope ``S`` holds key ``S`` and keys ``S:...`` (whole segments), one
    trailing ``:`` of ``S`` dropped first (``"u1:s1:"`` is ``"u1:s1"``; ``"u1::"`` is
    ``"u1:"``, whose keys are ``u1:`` and ``u1::...``). Scopes of only ``:`` are refused."""
    if scope is None:
        return True
    scope = scope[:-1] if scope.endswith(":") and len(scope) > 1 else scope
    return key == scope or key.startswith(scope + ":")


@dataclass
class Item:
    value: dict[str, Any]
    seq: int
    deadline: float | None


@dataclass
class MemoryModel:
    max_size: int
    now: float = 0.0
    items: dict[str, Item] = field(default_factory=dict)
    lru: list[str] = field(default_factory=list)
    seq: int = 0

    def expire(self) -> None:
        for key in [k for k, it in self.items.items() if it.deadline is not None
                    and it.deadline <= self.now]:  # fmt: skip
            self.drop(key)

    def drop(self, key: str) -> None:
        del self.items[key]
        self.lru.remove(key)

    def touch(self, key: str) -> None:
        self.lru.remove(key)
        self.lru.append(key)

    def add(self, key: str, value: dict[str, Any], ttl: float | None) -> None:
        self.expire()
        self.seq += 1
        copy = json.loads(json.dumps(value))
        if key in self.items:
            self.lru.remove(key)
        self.items[key] = Item(copy, self.seq, None if ttl is None else self.now + ttl)
        self.lru.append(key)
        while len(self.items) > self.max_size:
            self.drop(self.lru[0])

    def get(self, key: str) -> dict[str, Any] | None:
        self.expire()
        if key not in self.items:
            return None
        self.touch(key)
        return self.items[key].value

    def delete(self, key: str) -> bool:
        self.expire()
        if key not in self.items:
            return False
        self.drop(key)
        return True

    def list(self, scope: str | None) -> list[str]:
        """The keys ``list_memories(scope)`` pages through: newest write first."""
        self.expire()
        live = self.items
        return sorted((k for k in live if in_scope(k, scope)), key=lambda k: -live[k].seq)

    def forget(self, scope: str) -> int:
        """Drop the scope's memories; how many there were."""
        gone = self.list(scope)
        for key in gone:
            self.drop(key)
        return len(gone)

    def search(self, query: str, limit: int, scope: str | None = None) -> list[dict[str, Any]]:
        self.expire()
        live = self.items
        if not query.strip():
            keys = sorted((k for k in live if in_scope(k, scope)), key=lambda k: -live[k].seq)
            return [live[k].value for k in keys[:limit]]
        terms, prefix = query_terms(query)
        # A scoped search's statistics (count, lengths, document frequencies) are the scope's.
        counts = {
            k: ANALYZER.term_counts(strings(it.value))
            for k, it in live.items()
            if in_scope(k, scope)
        }
        df: Counter[str] = Counter(t for c in counts.values() for t in c)
        # Stop words are indexed (for queries of nothing else) but make no memory longer.
        lengths = {
            k: sum(v for t, v in c.items() if not t.startswith(STOP_MARK))
            for k, c in counts.items()
        }
        n = len(counts)
        if n == 0:
            return []
        avg = sum(lengths.values()) / n

        def matches(i: int, term: str) -> bool:
            if prefix and i == len(terms) - 1:
                return term.startswith(terms[i])
            return term == terms[i]

        # An unfinished word's completions count COMPLETION_TF an occurrence; the word itself 1.
        weighs = [
            {t: 1.0 if t == terms[i] or not prefix or i < len(terms) - 1 else COMPLETION_TF
             for t in df if matches(i, t)}
            for i in range(len(terms))
        ]  # fmt: skip
        matched = [w for w in weighs if w]
        idfs = [idf(sum(df[t] for t in m), n) for m in matched]
        order = sorted(range(len(idfs)), key=lambda i: -idfs[i])
        scored = []
        for key, c in counts.items():
            score, hit = 0.0, False
            for i in order:
                tf = sum(v * matched[i][t] for t, v in c.items() if t in matched[i])
                if tf:
                    score += bm25(float(tf), float(lengths[key]), avg, idfs[i], length_b(avg))
                    hit = True
            if hit:
                scored.append((score, live[key].seq, key))
        scored.sort(reverse=True)
        return [live[k].value for _, _, k in scored[:limit]]
