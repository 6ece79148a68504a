"""Keyword + semantic fusion, chosen by measurement: BM25, MiniLM and their fusions (issue 13).

Run: ``.venv/bin/python benchmarks/bench_fusion.py`` (``--quick`` for 40 Cranfield and 60
chitchat questions, ``--json PATH`` to save the figures). Needs the ``bench`` extra and the
offline embedder (``benchmarks/_embed.py``; install notes in ``pyproject.toml``).

Datasets, both with judgments, both scored by ``bench_relevance``'s metric code (nDCG@10
graded, recall@100, averaged over questions with a relevant document):

- *cranfield*: ``benchmarks/data/cranfield`` exactly as ``bench_relevance.py`` reads it.
- *chitchat-qa*: built here (the repo has no judged conversational set; ``_corpus.questions``
  are keyword templates without judgments). From ``chitchat-dataset``, ``CHAT_CONVERSATIONS``
  conversations drawn with a fixed seed; every turn of them is a memory. A question is a turn
  that ends with ``?`` and has 5..30 words, followed by a turn of the other speaker; its one
  relevant memory (judgment 1) is that next turn, the reply. The question's own turn is taken
  out of its ranking. So the task is "find what was said in answer to this", judged by the
  conversation itself, not by us; one relevant document a question makes recall@100 a hit rate.

Rankings, each ``DEPTH`` (100) deep after fusion:

- *bm25*: our index (``SearchIndex`` with the default ``Indexing``, as ``MemoryPrimitive``
  in-process builds it), its BM25 scores read with ``search_scored``; checked against
  ``MemoryPrimitive.search_items`` on Cranfield (the report says how many rankings agree);
- *minilm*: all-MiniLM-L6-v2 cosine, exact (numpy dot product of unit vectors);
- fusions of the two candidate lists, each ``depth`` deep (100 or 200): *rrf k* (sum of
  ``1/(k + rank)``); and weighted sums ``(1 - w) * kw + w * sem`` of normalised scores, where
  *minmax* maps each list to 0..1, *zscore* subtracts its mean and divides by its standard
  deviation, *dbsf* (distribution-based) maps mean -/+ 3 standard deviations to 0..1, clipped.
  A document absent from one list gets 0 there (minmax, dbsf) or that list's lowest z (zscore).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _embed import Embedder
from _timing import bench_main, table
from bench_relevance import DEPTH, gain, load, ndcg, recall
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import Indexing

QUICK = {"cranfield": 40, "chitchat-qa": 60}
CHAT_CONVERSATIONS = 400
CHAT_QUESTIONS = 200
SEED = 20261126
DEPTHS = (100, 200)
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(1, 10))
RRF_KS = (10, 20, 60)
BOOTSTRAP = 2000
# Compared question by question with bm25 and with rrf k=60 (paired bootstrap, depth 100).
SHORTLIST = ("minilm", "rrf k=20", "minmax w=0.5", "minmax w=0.6", "zscore w=0.5", "dbsf w=0.5")

Scored = list[tuple[str, float]]


class Dataset:
    def __init__(self, name: str, docs: list[tuple[str, str]], queries: list[tuple[int, str]],
                 qrels: dict[int, dict[str, int]], exclude: dict[int, str]) -> None:  # fmt: skip
        self.name, self.docs, self.queries, self.qrels = name, docs, queries, qrels
        self.exclude = exclude  # question -> its own document, kept out of its ranking


def cranfield() -> Dataset:
    data = load()
    return Dataset("cranfield", data.docs, data.queries, data.qrels, {})


def chitchat_qa() -> Dataset:
    import chitchat_dataset  # type: ignore[import-untyped]

    raw = json.loads(Path(chitchat_dataset.__file__).with_name("dataset.json").read_text())
    ids = sorted(raw)
    rng = random.Random(SEED)
    chosen = rng.sample(ids, CHAT_CONVERSATIONS)
    docs, candidates = [], []
    for c, cid in enumerate(chosen):
        turns = [" ".join(u["text"] for u in m).strip() for m in raw[cid]["messages"]]
        turns = [t for t in turns if t]
        for n, text in enumerate(turns):
            docs.append((f"c{c}:{n}", text))
            if n + 1 < len(turns) and text.endswith("?") and 5 <= len(text.split()) <= 30:
                candidates.append((f"c{c}:{n}", text, f"c{c}:{n + 1}"))
    picked = rng.sample(candidates, min(CHAT_QUESTIONS, len(candidates)))
    queries = [(i, text) for i, (_, text, _) in enumerate(picked, start=1)]
    qrels = {i: {answer: 1} for i, (_, _, answer) in enumerate(picked, start=1)}
    exclude = {i: own for i, (own, _, _) in enumerate(picked, start=1)}
    return Dataset("chitchat-qa", docs, queries, qrels, exclude)


# -- the two rankings ------------------------------------------------------------------------


def bm25_runs(ds: Dataset, depth: int) -> tuple[dict[int, Scored], float]:
    indexing, index = Indexing(), SearchIndex()
    for docid, text in ds.docs:
        index.add(docid, indexing.terms({"content": text}))
    runs, ms = {}, []
    for qid, text in ds.queries:
        start = time.perf_counter()
        scored = index.search_scored(indexing.query(text), depth + 1)
        ms.append((time.perf_counter() - start) * 1e3)
        runs[qid] = [(d, s) for d, s in scored if d != ds.exclude.get(qid)][:depth]
    return runs, statistics.median(ms)


async def memory_agrees(ds: Dataset, runs: dict[int, Scored], n: int = 40) -> int:
    """How many of the first ``n`` questions MemoryPrimitive ranks exactly as ``bm25_runs``."""
    memory = MemoryPrimitive(max_size=len(ds.docs))
    for docid, text in ds.docs:
        await memory.add(docid, {"content": text})
    same = 0
    for qid, text in ds.queries[:n]:
        keys = [k for k, _ in await memory.search_items(text, DEPTH)]
        same += keys == [d for d, _ in runs[qid][:DEPTH]]
    await memory.aclose()
    return same


def semantic_runs(ds: Dataset, embedder: Embedder, depth: int) -> tuple[dict[int, Scored], float]:
    matrix = embedder.embed([text for _, text in ds.docs])
    questions = embedder.embed([text for _, text in ds.queries])
    ids = [docid for docid, _ in ds.docs]
    runs, ms = {}, []
    for (qid, _), q in zip(ds.queries, questions, strict=True):
        start = time.perf_counter()
        sims = matrix @ q
        top = np.argpartition(-sims, depth)[: depth + 1]
        top = top[np.argsort(-sims[top], kind="stable")]
        ms.append((time.perf_counter() - start) * 1e3)
        runs[qid] = [(ids[i], float(sims[i])) for i in top if ids[i] != ds.exclude.get(qid)]
        runs[qid] = runs[qid][:depth]
    return runs, statistics.median(ms)


# -- fusion ----------------------------------------------------------------------------------


def minmax(scored: Scored) -> tuple[dict[str, float], float]:
    if not scored:
        return {}, 0.0
    values = [s for _, s in scored]
    lo, hi = min(values), max(values)
    span = hi - lo
    return {d: (s - lo) / span if span else 1.0 for d, s in scored}, 0.0


def zscore(scored: Scored) -> tuple[dict[str, float], float]:
    if not scored:
        return {}, 0.0
    values = [s for _, s in scored]
    mean, sd = statistics.fmean(values), statistics.pstdev(values) or 1.0
    normal = {d: (s - mean) / sd for d, s in scored}
    return normal, min(normal.values())


def dbsf(scored: Scored) -> tuple[dict[str, float], float]:
    if not scored:
        return {}, 0.0
    values = [s for _, s in scored]
    mean, sd = statistics.fmean(values), statistics.pstdev(values)
    lo, hi = mean - 3 * sd, mean + 3 * sd
    if hi <= lo:
        return {d: 1.0 for d, _ in scored}, 0.0
    return {d: min(1.0, max(0.0, (s - lo) / (hi - lo))) for d, s in scored}, 0.0


NORMALISERS: dict[str, Callable[[Scored], tuple[dict[str, float], float]]] = {
    "minmax": minmax,
    "zscore": zscore,
    "dbsf": dbsf,
}


def weighted(kw: Scored, sem: Scored, w: float, norm: str) -> list[str]:
    k, k_absent = NORMALISERS[norm](kw)
    s, s_absent = NORMALISERS[norm](sem)
    fused = {d: (1 - w) * k.get(d, k_absent) + w * s.get(d, s_absent) for d in k.keys() | s.keys()}
    return sorted(fused, key=lambda d: (-fused[d], d))[:DEPTH]


def rrf(kw: Scored, sem: Scored, k: int) -> list[str]:
    fused: dict[str, float] = {}
    for ranking in (kw, sem):
        for rank, (d, _) in enumerate(ranking, start=1):
            fused[d] = fused.get(d, 0.0) + 1.0 / (k + rank)
    return sorted(fused, key=lambda d: (-fused[d], d))[:DEPTH]


def evaluate(
    runs: dict[int, list[str]], qrels: dict[int, dict[str, int]]
) -> tuple[float, float, list[float]]:
    """Mean nDCG@10, mean recall@100, and per-question nDCG@10 (for the paired bootstrap)."""
    qids = [q for q in runs if any(gain(r) > 0 for r in qrels[q].values())]
    per_query = [ndcg(runs[q], qrels[q]) for q in qids]
    return (statistics.fmean(per_query),
            statistics.fmean(recall(runs[q], qrels[q]) for q in qids), per_query)  # fmt: skip


def paired_ci(a: list[float], b: list[float], rounds: int = BOOTSTRAP) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(a - b), questions resampled in pairs."""
    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(SEED)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def methods(depth: int) -> list[tuple[str, Callable[[Scored, Scored], list[str]]]]:
    out: list[tuple[str, Callable[[Scored, Scored], list[str]]]] = [
        ("bm25", lambda kw, sem: [d for d, _ in kw][:DEPTH]),
        ("minilm", lambda kw, sem: [d for d, _ in sem][:DEPTH]),
    ]
    out += [(f"rrf k={k}", lambda kw, sem, k=k: rrf(kw, sem, k)) for k in RRF_KS]
    for norm in NORMALISERS:
        out += [(f"{norm} w={w}", lambda kw, sem, w=w, n=norm: weighted(kw, sem, w, n))
                for w in WEIGHTS]  # fmt: skip
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    embedder = Embedder()
    datasets = [cranfield(), chitchat_qa()]
    for ds in datasets:
        if args.quick:
            ds.queries = ds.queries[: QUICK[ds.name]]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    info: dict[str, Any] = {}
    paired: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for ds in datasets:
        kw_all, kw_ms = bm25_runs(ds, max(DEPTHS))
        sem_all, sem_ms = semantic_runs(ds, embedder, max(DEPTHS))
        info[ds.name] = {"documents": len(ds.docs), "questions": len(ds.queries),
                         "bm25_ms_p50": kw_ms, "cosine_ms_p50": sem_ms}  # fmt: skip
        if ds.name == "cranfield":
            n = min(40, len(ds.queries))
            info[ds.name]["memory_primitive_agrees"] = f"{await memory_agrees(ds, kw_all, n)}/{n}"
        for depth in DEPTHS:
            per_query: dict[str, list[float]] = {}
            for name, fuse in methods(depth):
                runs = {q: fuse(kw_all[q][:depth], sem_all[q][:depth]) for q, _ in ds.queries}
                mean_ndcg, mean_recall, per_query[name] = evaluate(runs, ds.qrels)
                results.setdefault(name, {}).setdefault(ds.name, {})[str(depth)] = [
                    mean_ndcg,
                    mean_recall,
                ]
            if depth == DEPTHS[0]:
                paired[ds.name] = {
                    name: {
                        base: paired_ci(per_query[name], per_query[base])
                        for base in ("bm25", "rrf k=60")
                    }
                    for name in SHORTLIST
                }
    sample = [text for _, text in datasets[1].docs[:512]]
    speed = embedder.throughput(sample, [t for _, t in datasets[1].queries[:50]])
    return {"datasets": info, "results": results, "paired": paired, "embedder": speed,
            "quick": args.quick}  # fmt: skip


def report(figures: dict[str, Any]) -> None:
    for name, d in figures["datasets"].items():
        agrees = d.get("memory_primitive_agrees")
        same = f"; MemoryPrimitive ranks {agrees} exactly as SearchIndex" if agrees else ""
        print(f"{name}: {d['documents']} documents, {d['questions']} questions; bm25 "
              f"{d['bm25_ms_p50']:.2f} ms p50, exact cosine {d['cosine_ms_p50']:.2f} ms p50"
              + same)  # fmt: skip
    e = figures["embedder"]
    print(f"MiniLM (CPU): load {e['load_s']:.1f} s, {e['texts_per_s']:.0f} texts/s in batches "
          f"({e['texts']} chitchat turns), one question {e['question_ms_p50']:.1f} ms p50 / "
          f"{e['question_ms_p99']:.1f} ms p99\n")  # fmt: skip
    results = figures["results"]
    names = list(figures["datasets"])
    for depth in (str(d) for d in DEPTHS):
        print(f"candidate depth {depth} from each side; fused list cut to {DEPTH}")
        headers = ["method"]
        for n in names:
            headers += [f"{n} nDCG@10", f"{n} R@100"]
        headers += ["mean nDCG@10", "min gain vs bm25"]
        rows = []
        for method, per in results.items():
            row: list[object] = [method]
            gains = []
            for n in names:
                nd, rc = per[n][depth]
                row += [nd, rc]
                gains.append(nd / results["bm25"][n][depth][0] - 1)
            row += [statistics.fmean(per[n][depth][0] for n in names), f"{min(gains):+.1%}"]
            rows.append(row)
        print(table(headers, rows))
        print()
    print(f"nDCG@10 difference, 95% paired bootstrap interval ({BOOTSTRAP} resamples of the "
          f"questions), candidate depth {DEPTHS[0]}")  # fmt: skip
    headers, rows = ["method"], []
    for n in names:
        headers += [f"{n} vs bm25", f"{n} vs rrf k=60"]
    for method in SHORTLIST:
        row = [method]
        for n in names:
            row += [f"{lo:+.3f}..{hi:+.3f}" for lo, hi in figures["paired"][n][method].values()]
        rows.append(row)
    print(table(headers, rows))
    print("\nfusion done")


def main() -> None:
    bench_main(__doc__ or "", main_async, report)


if __name__ == "__main__":
    main()
