"""Full-text search peers on the same texts, in RAM: tantivy and SQLite FTS5.

Both are asked what ``MemoryPrimitive.search`` is asked: the question's words OR-ed, BM25,
the top ``limit``, optionally within one user's memories; both return the matching texts.

- tantivy (Rust, via the ``tantivy`` wheel): an index in RAM, ``en_stem`` tokenizer (lower
  case, English stemming, no stop-word list), the query parser's default OR of the words; the
  user scope is a ``raw`` field that must match.
- SQLite FTS5 (the standard library's ``sqlite3``): an in-memory database, ``tokenize='porter'``,
  ``MATCH '"w1" OR "w2" ...' ORDER BY bm25(...) LIMIT ?``; the scope is ``AND user = ?`` on an
  unindexed column.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

_TOKEN = re.compile(r"[A-Za-z0-9]+")


def query_words(question: str) -> list[str]:
    """The question's words as both peers are given them (letters and digits, lower case)."""
    return list(dict.fromkeys(w.lower() for w in _TOKEN.findall(question)))


class TantivyPeer:
    """tantivy in RAM; ``None`` from ``create`` when the wheel is not installed."""

    name = "tantivy"

    def __init__(self, tantivy: Any, turns: list[tuple[str, dict[str, Any]]]) -> None:
        self.t = tantivy
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("content", stored=False, tokenizer_name="en_stem")
        builder.add_text_field("user", stored=False, tokenizer_name="raw")
        builder.add_integer_field("id", stored=True, indexed=False)
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema)  # no path: in RAM
        self.texts = [value["content"] for _, value in turns]
        writer = self.index.writer(heap_size=256_000_000, num_threads=1)
        for i, (key, value) in enumerate(turns):
            user = key.split(":", 1)[0]
            writer.add_document(tantivy.Document(content=value["content"], user=user, id=i))
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()
        self.searcher = self.index.searcher()

    @classmethod
    def create(cls, turns: list[tuple[str, dict[str, Any]]]) -> TantivyPeer | None:
        try:
            import tantivy  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return None
        return cls(tantivy, turns)

    def search(self, question: str, limit: int, user: str | None) -> list[str]:
        words = query_words(question)
        if not words:
            return []
        query = self.index.parse_query(" ".join(words), ["content"])
        if user is not None:
            t = self.t
            scope = t.Query.term_query(self.schema, "user", user)
            query = t.Query.boolean_query([(t.Occur.Must, scope), (t.Occur.Must, query)])
        hits = self.searcher.search(query, limit).hits
        return [self.texts[self.searcher.doc(address)["id"][0]] for _, address in hits]


class Fts5Peer:
    """SQLite FTS5 in an in-memory database, porter tokenizer."""

    name = "sqlite-fts5"

    def __init__(self, turns: list[tuple[str, dict[str, Any]]]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE VIRTUAL TABLE t USING fts5(content, user UNINDEXED, tokenize='porter')"
        )
        self.db.executemany(
            "INSERT INTO t(rowid, content, user) VALUES (?, ?, ?)",
            ((i, value["content"], key.split(":", 1)[0]) for i, (key, value) in enumerate(turns)),
        )
        self.db.commit()

    def search(self, question: str, limit: int, user: str | None) -> list[str]:
        words = query_words(question)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        if user is None:
            rows = self.db.execute(
                "SELECT content FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT ?", (match, limit)
            )
        else:
            rows = self.db.execute(
                "SELECT content FROM t WHERE t MATCH ? AND user = ? ORDER BY bm25(t) LIMIT ?",
                (match, user, limit),
            )
        return [row[0] for row in rows]
