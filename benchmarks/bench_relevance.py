"""Search relevance on the Cranfield collection: ours against bm25s, tantivy and SQLite FTS5.

Run: ``.venv/bin/python benchmarks/bench_relevance.py`` (``--quick`` for the first 40 queries,
``--json PATH`` to save the figures, ``--variant NAME`` to pick entries of ``OURS_VARIANTS``,
``--redis-url URL`` to also run ours on Redis and compare its rankings with in-process,
``--query-engine`` to also run ours in the Redis Query Engine (a server from PyPI wheels,
``_redis_stack.py``) and compare its rankings: nDCG@10 and the top-10 overlap).

Cranfield 1400 (``benchmarks/data/cranfield/``, see its README): 1400 aeronautics abstracts,
225 queries, human relevance judgments. Every engine indexes each document's title and text
and answers each query's words OR'ed, top 100; the same metric code scores them all:

- *nDCG@10*, graded: judgment 1 (complete answer) .. 4 (minimum interest) gain 4 .. 1,
  linear gain, ``log2(rank + 1)`` discount; -1 and unjudged documents gain 0;
- *recall@100*: judged 1..4 documents in the top 100 over all judged 1..4;
- both averaged over the queries with at least one relevant document (all 225);
- *ms p50*: median wall time per query, one query at a time, query analysis included.

Engines: ``bm25s`` (English stop words, Snowball stemmer from PyStemmer, default BM25),
``tantivy`` (``en_stem`` tokenizer, index in RAM), ``fts5`` (stdlib sqlite3,
``tokenize='porter'``, ranked by ``bm25()``) and each ``OURS_VARIANTS`` entry
(``MemoryPrimitive`` in-process). bm25s and tantivy come with the ``bench`` extra; without
them their rows are skipped with a note.

Query numbering: the ``.I`` numbers in ``cran.qry`` run 1..365 with gaps, but ``cranqrel``
numbers the queries by their position in the file, 1..225 (the usual practice); the parser
checks that the judgments use exactly those positions.
"""

from __future__ import annotations

import argparse
import math
import re
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _timing import bench_main, percentiles, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search import Analyzer

DATA = Path(__file__).resolve().parent / "data" / "cranfield"
DEPTH = 100  # results asked of every engine; recall is measured at this depth
NDCG_AT = 10
QUICK_QUERIES = 40

# Keyword arguments for ``MemoryPrimitive(**kwargs)``, by the name printed in the table.
# "ours" is the default; the others show what each part of the analyzer is worth.
OURS_VARIANTS: dict[str, dict[str, Any]] = {
    "ours": {},
    "ours, no stemming": {"analyzer": Analyzer(stemming=False)},
    "ours, no stop words": {"analyzer": Analyzer(stop_words=None)},
    "ours, neither": {"analyzer": Analyzer(stop_words=None, stemming=False)},
}

# Search modes that need an embedder: ``MemoryPrimitive(embed=...)`` over the offline MiniLM
# (``_embed.py``), by the name printed in the table. Without sentence-transformers and the
# model, their rows are skipped with a note (the keyword rows above do not change).
SEMANTIC_VARIANTS: dict[str, str] = {"ours, semantic": "semantic", "ours, hybrid": "hybrid"}

WORD = re.compile(r"\w+")
MARKER = re.compile(r"^\.([TABW])\s*$|^\.I\s+(\d+)\s*$")


@dataclass
class Cranfield:
    docs: list[tuple[str, str]]  # (docid, title + " " + text)
    queries: list[tuple[int, str]]  # (position 1..225, text); the qrels' query id is the position
    query_numbers: list[int]  # the .I number of each query in cran.qry, for the record
    qrels: dict[int, dict[str, int]]  # query position -> docid -> judgment (1..4 or -1)


def parse_records(text: str) -> list[tuple[str, dict[str, str]]]:
    """SMART-format records: ``.I id`` then ``.T``/``.A``/``.B``/``.W`` fields, one per line."""
    records: list[tuple[str, dict[str, list[str]]]] = []
    field: str | None = None
    for line in text.splitlines():
        marker = MARKER.match(line)
        if marker and marker.group(2):
            records.append((marker.group(2), {}))
            field = None
        elif marker:
            field = marker.group(1)
            records[-1][1][field] = []
        elif field is not None:
            records[-1][1][field].append(line)
    return [(rid, {f: " ".join(ls).strip() for f, ls in fields.items()}) for rid, fields in records]


def load(data: Path = DATA) -> Cranfield:
    # read_text's universal newlines turn the files' CRLF line ends into "\n".
    docs = [
        (docid, f"{fields.get('T', '')} {fields.get('W', '')}".strip())
        for docid, fields in parse_records((data / "cran.all.1400").read_text(encoding="ascii"))
    ]
    raw_queries = parse_records((data / "cran.qry").read_text(encoding="ascii"))
    queries = [(pos, fields["W"]) for pos, (_, fields) in enumerate(raw_queries, start=1)]
    qrels: dict[int, dict[str, int]] = {}
    for line in (data / "cranqrel").read_text(encoding="ascii").splitlines():
        if line.strip():
            qid, docid, rel = line.split()
            qrels.setdefault(int(qid), {})[docid] = int(rel)
    if set(qrels) != set(range(1, len(queries) + 1)):
        raise ValueError(f"cranqrel query ids are not the positions 1..{len(queries)}")
    doc_ids = {docid for docid, _ in docs}
    if any(docid not in doc_ids for judged in qrels.values() for docid in judged):
        raise ValueError("cranqrel judges a document that cran.all.1400 does not hold")
    if any(rel not in (1, 2, 3, 4, -1) for judged in qrels.values() for rel in judged.values()):
        raise ValueError("cranqrel holds a judgment outside 1..4 and -1")
    return Cranfield(docs, queries, [int(qid) for qid, _ in raw_queries], qrels)


# -- metrics: the same for every engine ------------------------------------------------------


def gain(rel: int) -> int:
    """Judgment 1 (complete answer) .. 4 (minimum interest) -> 4 .. 1; -1 (not relevant) -> 0."""
    return 5 - rel if 1 <= rel <= 4 else 0


def ndcg(ranked: list[str], judged: dict[str, int], k: int = NDCG_AT) -> float:
    dcg = sum(gain(judged.get(d, -1)) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((gain(rel) for rel in judged.values()), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


def recall(ranked: list[str], judged: dict[str, int], k: int = DEPTH) -> float:
    relevant = {d for d, rel in judged.items() if gain(rel) > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def score(
    runs: dict[int, list[str]], qrels: dict[int, dict[str, int]]
) -> tuple[float, float, list[float]]:
    """Mean nDCG@10, mean recall@100, and per-query nDCG@10, over queries with a relevant doc."""
    qids = [q for q in runs if any(gain(rel) > 0 for rel in qrels[q].values())]
    per_query = [ndcg(runs[q], qrels[q]) for q in qids]
    return (
        statistics.fmean(per_query),
        statistics.fmean(recall(runs[q], qrels[q]) for q in qids),
        per_query,
    )


# -- engines: each indexes the documents, then returns a search(query) -> docids best first ---


Search = Callable[[str], list[str]]


def bm25s_engine(docs: list[tuple[str, str]]) -> Search:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = [docid for docid, _ in docs]
    retriever = bm25s.BM25()
    corpus = bm25s.tokenize([text for _, text in docs], stopwords="en", stemmer=stemmer,
                            show_progress=False)  # fmt: skip
    retriever.index(corpus, show_progress=False)

    def search(query: str) -> list[str]:
        tokens = bm25s.tokenize(query, stopwords="en", stemmer=stemmer, show_progress=False,
                                return_ids=False)  # fmt: skip
        found, scores = retriever.retrieve(tokens, k=DEPTH, show_progress=False, n_threads=1)
        # bm25s fills k with zero-score documents; the other engines return only matches.
        return [ids[i] for i, s in zip(found[0], scores[0], strict=True) if s > 0]

    return search


def tantivy_engine(docs: list[tuple[str, str]]) -> Search:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("docid", stored=True, tokenizer_name="raw")
    builder.add_text_field("body", stored=False, tokenizer_name="en_stem")
    index = tantivy.Index(builder.build())  # no path: in RAM
    writer = index.writer(heap_size=64_000_000, num_threads=1)
    for docid, text in docs:
        writer.add_document(tantivy.Document(docid=docid, body=text))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()

    def search(query: str) -> list[str]:
        # Only the words reach the parser (no query syntax); its default conjunction is OR.
        parsed = index.parse_query(" ".join(WORD.findall(query.lower())), ["body"])
        hits = searcher.search(parsed, DEPTH).hits
        return [searcher.doc(address)["docid"][0] for _, address in hits]

    return search


def fts5_engine(docs: list[tuple[str, str]]) -> Search:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(docid UNINDEXED, body, tokenize='porter')")
    db.executemany("INSERT INTO docs (docid, body) VALUES (?, ?)", docs)
    db.commit()

    def search(query: str) -> list[str]:
        # Each word quoted (no FTS5 syntax or keywords), OR'ed; bm25() is lower for better.
        match = " OR ".join(f'"{word}"' for word in WORD.findall(query.lower()))
        rows = db.execute(
            "SELECT docid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?",
            (match, DEPTH),
        )
        return [docid for (docid,) in rows]

    return search


async def ours_index(memory: MemoryPrimitive, docs: list[tuple[str, str]]) -> None:
    for docid, text in docs:
        await memory.add(f"cran:{docid}", {"content": text})


async def ours_search(memory: MemoryPrimitive, query: str, mode: str | None = None) -> list[str]:
    found = await memory.search_items(query, DEPTH, mode=mode)  # type: ignore[arg-type]
    return [key.removeprefix("cran:") for key, _ in found]


def minilm(data: Cranfield, queries: list[tuple[int, str]]) -> Callable[[list[str]], Any]:
    """A batch embedding function over the offline MiniLM for ``MemoryPrimitive(embed=)``.

    The documents and queries are embedded up front in batches (cached on disk by
    ``_embed.Embedder``), so the timed searches measure the index, not the model; a text not
    seen up front goes through the model. Raises ImportError without the model.
    """
    from _embed import Embedder

    embedder = Embedder()
    texts = [text for _, text in data.docs] + [text for _, text in queries]
    known = dict(zip(texts, embedder.embed(texts), strict=True))

    def embed(batch: list[str]) -> Any:
        missing = [t for t in batch if t not in known]
        if missing:
            known.update(zip(missing, embedder.encode(missing), strict=True))
        return [known[t] for t in batch]

    return embed


# -- the run ---------------------------------------------------------------------------------


def run_sync(search: Search, queries: list[tuple[int, str]]) -> tuple[dict, list]:
    search(queries[0][1])  # warm up
    runs, ms = {}, []
    for qid, text in queries:
        start = time.perf_counter()
        runs[qid] = search(text)
        ms.append((time.perf_counter() - start) * 1e3)
    return runs, ms


async def run_ours(memory: MemoryPrimitive, queries: list[tuple[int, str]],
                   mode: str | None = None) -> tuple[dict, list]:  # fmt: skip
    await ours_search(memory, queries[0][1], mode)  # warm up
    runs, ms = {}, []
    for qid, text in queries:
        start = time.perf_counter()
        runs[qid] = await ours_search(memory, text, mode)
        ms.append((time.perf_counter() - start) * 1e3)
    return runs, ms


def row(engine: str, runs: dict[int, list[str]], ms: list[float], index_s: float,
        qrels: dict[int, dict[str, int]]) -> dict[str, Any]:  # fmt: skip
    mean_ndcg, mean_recall, per_query = score(runs, qrels)
    p50, p99 = percentiles(ms)
    return {"engine": engine, "ndcg10": mean_ndcg, "recall100": mean_recall, "p50_ms": p50,
            "p99_ms": p99, "index_s": index_s, "ndcg10_per_query": per_query}  # fmt: skip


PEERS: dict[str, Callable[[list[tuple[str, str]]], Search]] = {
    "bm25s": bm25s_engine,
    "tantivy": tantivy_engine,
    "fts5": fts5_engine,
}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    data = load()
    queries = data.queries[:QUICK_QUERIES] if args.quick else data.queries
    known = {**OURS_VARIANTS, **SEMANTIC_VARIANTS}
    variants = list(dict.fromkeys(args.variant or known))  # in order, once each
    unknown = [v for v in variants if v not in known]
    if unknown:
        raise SystemExit(f"unknown --variant {unknown}; known: {sorted(known)}")
    rows, notes, redis_rows = [], [], []
    engine_url, engine_server = None, None
    if args.query_engine:
        from _redis_stack import start_redis_stack

        started = start_redis_stack()
        if isinstance(started, str):
            raise SystemExit(f"--query-engine: {started}")
        engine_server, described = started
        engine_url = engine_server.url
        notes.append(f"query engine: {described}")

    for name, make in PEERS.items():
        start = time.perf_counter()
        try:
            search = make(data.docs)
        except ImportError as error:  # the bench extra is not installed: no row, a note
            missing = {"Stemmer": "PyStemmer"}.get(error.name or "", error.name or str(error))
            notes.append(f"skipped {name}: {missing} is not installed (pip install -e '.[bench]')")
            continue
        except sqlite3.OperationalError as error:  # a Python whose sqlite3 lacks FTS5
            notes.append(f"skipped {name}: {error}")
            continue
        index_s = time.perf_counter() - start
        runs, ms = run_sync(search, queries)
        rows.append(row(name, runs, ms, index_s, data.qrels))

    embed: Any = None
    for variant in variants:
        kwargs = dict(OURS_VARIANTS.get(variant, {}))
        mode = SEMANTIC_VARIANTS.get(variant)
        if mode is not None:
            if embed is None:
                try:
                    embed = minilm(data, queries)
                except ImportError as error:
                    notes.append(f"skipped {variant}: {error.name or error} is not installed "
                                 "(pip install -e '.[bench]' with a CPU torch)")  # fmt: skip
                    continue
            kwargs["embed"] = embed
        memory = MemoryPrimitive(max_size=len(data.docs), **kwargs)
        start = time.perf_counter()
        await ours_index(memory, data.docs)
        index_s = time.perf_counter() - start
        runs, ms = await run_ours(memory, queries, mode)
        rows.append(row(variant, runs, ms, index_s, data.qrels))
        await memory.aclose()
        if args.redis_url:
            on_redis, compared = await redis_variant(args.redis_url, variant, kwargs, data,
                                                     queries, runs, mode)  # fmt: skip
            rows.append(on_redis)
            redis_rows.append(compared)
        if engine_url:
            on_engine, compared = await redis_variant(engine_url, variant, kwargs, data, queries,
                                                      runs, mode, engine="redis")  # fmt: skip
            rows.append(on_engine)
            redis_rows.append(compared)

    if engine_server is not None:
        engine_server.stop()
    return {
        "documents": len(data.docs),
        "queries": len(queries),
        "all_queries": len(data.queries),
        "judged_queries": sum(
            1 for q, _ in queries if any(gain(r) > 0 for r in data.qrels[q].values())
        ),
        "cran_qry_numbers": [data.query_numbers[0], data.query_numbers[-1]],
        "engines": rows,
        "redis": redis_rows,
        "notes": notes,
    }


async def redis_variant(url: str, variant: str, kwargs: dict[str, Any], data: Cranfield,
                        queries: list[tuple[int, str]], in_process: dict[int, list[str]],
                        mode: str | None = None, engine: str = "replica",
                        ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The variant on Redis, in a namespace of its own (cleared after); rankings compared.

    ``engine``: the search engine used there (``replica`` ranks exactly as in-process;
    ``redis``, the Query Engine, with its own BM25: compared by overlap).
    """
    namespace = f"bench:relevance:{variant}:{uuid.uuid4().hex[:12]}"
    memory = MemoryPrimitive(url, max_size=len(data.docs), namespace=namespace,
                             redis_timeout=30.0, search_engine=engine, **kwargs)  # fmt: skip
    try:
        start = time.perf_counter()
        await ours_index(memory, data.docs)
        index_s = time.perf_counter() - start
        runs, ms, not_redis = {}, [], 0
        for qid, text in queries:
            start = time.perf_counter()
            runs[qid] = await ours_search(memory, text, mode)
            ms.append((time.perf_counter() - start) * 1e3)
            not_redis += not memory.using_redis  # served in-process: Redis failed meanwhile
        differ = [q for q, _ in queries if runs[q] != in_process[q]]
        overlap = statistics.fmean(
            len(set(runs[q][:NDCG_AT]) & set(in_process[q][:NDCG_AT]))
            / max(1, min(NDCG_AT, len(in_process[q])))
            for q, _ in queries
        )
        label = f"{variant} (redis)" if engine == "replica" else f"{variant} (query engine)"
        compared = {"variant": label, "namespace": namespace, "queries_differ": len(differ),
                    "differ_qids": differ, "queries_not_on_redis": not_redis,
                    "top10_overlap": round(overlap, 3),
                    "engine": memory.get_backend_info().get("search_engine")}  # fmt: skip
        return row(label, runs, ms, index_s, data.qrels), compared
    finally:
        await memory.clear()
        await memory.aclose()


def report(figures: dict[str, Any]) -> None:
    first, last = figures["cran_qry_numbers"]
    positions = f"1..{figures['all_queries']}"
    print(f"Cranfield: {figures['documents']} documents, {figures['queries']} queries "
          f"({figures['judged_queries']} with a relevant document); cran.qry numbers "
          f"{first}..{last} read as positions {positions}, as cranqrel numbers them")  # fmt: skip
    print("nDCG@10 graded (judgment 1..4 -> gain 4..1, -1 -> 0); recall@100 of judgments 1..4\n")
    headers = ["engine", "nDCG@10", "recall@100", "ms p50", "ms p99", "index s"]
    print(table(headers, [[r["engine"], r["ndcg10"], r["recall100"], r["p50_ms"], r["p99_ms"],
                           r["index_s"]] for r in figures["engines"]]))  # fmt: skip
    for r in figures["redis"]:
        same = "identical" if not r["queries_differ"] else "DIFFERENT"
        print(f"\n{r['variant']} vs in-process: top-{DEPTH} rankings {same}; "
              f"{r['queries_differ']} of {figures['queries']} queries differ; mean top-10 "
              f"overlap {r.get('top10_overlap')}; searched by {r.get('engine')}")  # fmt: skip
        if r["queries_not_on_redis"]:
            print(f"  warning: {r['queries_not_on_redis']} searches were served in-process")
    for note in figures["notes"]:
        print(f"note: {note}")
    print("\nrelevance done")


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--variant", action="append", metavar="NAME",
                            help=f"an OURS_VARIANTS entry (repeatable; default all: "
                                 f"{', '.join(OURS_VARIANTS)})")  # fmt: skip
        parser.add_argument("--redis-url", help="also run ours on this Redis, compare rankings")
        parser.add_argument(
            "--query-engine",
            action="store_true",
            help="also run ours in the Redis Query Engine, compare rankings",
        )

    bench_main(__doc__ or "", main_async, report, arguments)


if __name__ == "__main__":
    main()
