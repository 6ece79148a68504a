"""Keyword hit@5 on a judged multilingual and identifier set: ours beside tantivy's tokenizers.

Run: ``.venv/bin/python benchmarks/bench_languages.py`` (``--json PATH`` to save the figures).

The set (``benchmarks/data/multilingual/``, see its README): 138 short memories and 69
questions in Chinese, Japanese, Korean, German, Hindi, Hebrew and Arabic (words with combining
marks), Thai, Lao, Khmer and Myanmar (written without spaces), code identifiers, emoji and
names made of stop words, each judged to one memory.
hit@5: the judged memory is among the first five; MRR@5: one over its rank there (0 if not).

Engines, each indexing every memory and answering each question as typed, keyword only:

- ``ours``: ``MemoryPrimitive`` in-process with the default analyzer;
- ``ours, per language``: the same, but German questions go to a memory built with
  ``Analyzer("german")`` (the way to choose an analyzer per language);
- ``tantivy default``: tantivy's ``default`` tokenizer (split at non-alphanumerics, lowercase);
- ``tantivy ngram 1-2`` / ``ngram 2-3``: tantivy's n-gram tokenizer over the text, lowercased.

tantivy comes with the ``bench`` extra; without it its rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import bench_main, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search import Analyzer

DATA = Path(__file__).parent / "data" / "multilingual" / "set.json"
K = 5
Search = Callable[[str, str], list[str]]  # (question, kind) -> ids, best first
# Query syntax would trip tantivy's parser: only word characters and emoji reach it.
_SYNTAX = re.compile(r"[\s!-/:-@\[-`{-~]+")


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


async def ours(docs: list[dict[str, str]], german: Analyzer | None = None) -> Search:
    default = MemoryPrimitive(max_size=10_000)
    other = MemoryPrimitive(max_size=10_000, analyzer=german) if german else None
    for doc in docs:
        for memory in (default, other):
            if memory is not None:
                await memory.add(doc["id"], {"content": doc["text"], "id": doc["id"]})
    answers: dict[tuple[str, str], list[str]] = {}

    async def prepare(questions: list[dict[str, Any]]) -> None:
        for q in questions:
            memory = other if other is not None and q["kind"] == "de" else default
            found = await memory.search(q["q"], limit=K)
            answers[(q["q"], q["kind"])] = [v["id"] for v in found]

    def search(question: str, kind: str) -> list[str]:
        return answers[(question, kind)]

    search.prepare = prepare  # type: ignore[attr-defined]
    return search


def tantivy_engine(docs: list[dict[str, str]], tokenizer: str) -> Search | None:
    try:
        import tantivy
    except ImportError:
        return None
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("docid", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name=tokenizer)
    index = tantivy.Index(builder.build())
    if tokenizer.startswith("ngram"):
        low, high = (int(x) for x in tokenizer.removeprefix("ngram").split("_"))
        analyzer = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.ngram(low, high, False))
            .filter(tantivy.Filter.lowercase())
            .build()
        )
        index.register_tokenizer(tokenizer, analyzer)
    writer = index.writer(heap_size=32_000_000, num_threads=1)
    for doc in docs:
        writer.add_document(tantivy.Document(docid=doc["id"], body=doc["text"]))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()

    def search(question: str, kind: str) -> list[str]:
        text = _SYNTAX.sub(" ", question).strip()
        if not text:
            return []
        parsed = index.parse_query(text, ["body"])
        hits = searcher.search(parsed, K).hits
        return [searcher.doc(address)["docid"][0] for _, address in hits]

    return search


def hits(search: Search, questions: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """hit@K and the mean reciprocal rank within the first K (0 when missed), per kind and
    overall: hit@K says whether it is found, MRR@K how near the top."""
    found: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for q in questions:
        ranked = search(q["q"], q["kind"])[:K]
        rank = next((i for i, key in enumerate(ranked, 1) if key in q["relevant"]), 0)
        for kind in (q["kind"], "all"):
            found[kind].append((int(rank > 0), 1 / rank if rank else 0.0))
    return {
        "hit": {kind: sum(h for h, _ in v) / len(v) for kind, v in found.items()},
        "mrr": {kind: sum(r for _, r in v) / len(v) for kind, v in found.items()},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = load()
    docs, questions = data["docs"], data["queries"]
    engines: dict[str, Search] = {}
    notes: list[str] = []
    for name, german in (("ours", None), ("ours, per language", Analyzer("german"))):
        search = await ours(docs, german)
        await search.prepare(questions)  # type: ignore[attr-defined]
        engines[name] = search
    for name, tokenizer in (("tantivy default", "default"), ("tantivy ngram 1-2", "ngram1_2"),
                            ("tantivy ngram 2-3", "ngram2_3")):  # fmt: skip
        peer = tantivy_engine(docs, tokenizer)
        if peer is None:
            notes.append(f"{name}: tantivy is not installed (pip install -e '.[bench]')")
        else:
            engines[name] = peer
    measured = {name: hits(search, questions) for name, search in engines.items()}
    counts: dict[str, int] = defaultdict(int)
    for q in questions:
        counts[q["kind"]] += 1
        counts["all"] += 1
    misses = {name: [q["q"] for q in questions
                     if not set(search(q["q"], q["kind"])[:K]) & set(q["relevant"])]
              for name, search in engines.items() if name.startswith("ours")}  # fmt: skip
    return {"memories": len(docs), "counts": dict(counts),
            "hit_at_5": {name: m["hit"] for name, m in measured.items()},
            "mrr_at_5": {name: m["mrr"] for name, m in measured.items()},
            "notes": notes, "ours_misses": misses}  # fmt: skip


def report(figures: dict[str, Any]) -> None:
    counts = figures["counts"]
    kinds = [k for k in counts if k != "all"] + ["all"]
    headers = ["engine", *(f"{k} ({counts[k]})" for k in kinds)]
    for measure, name in (("hit_at_5", f"hit@{K}"), ("mrr_at_5", f"MRR@{K}")):
        print(f"{figures['memories']} memories; {name} by kind (questions per kind in brackets)")
        rows = figures.get(measure, {}).items()
        print(table(headers, [[engine, *(row.get(k, 0.0) for k in kinds)] for engine, row in rows]))
    for note in figures["notes"]:
        print(note)
    for name, missed in figures["ours_misses"].items():
        print(f"{name} missed: {missed}")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
