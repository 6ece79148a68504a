"""Hybrid never below its better side? The weight and BM25's k1 and b, on five sets (issue 21).

Run: ``.venv/bin/python benchmarks/bench_hybrid.py`` (``--quick``: 40 questions a set;
``--json PATH`` saves the figures). Needs the ``bench`` extra and the offline embedder
(``benchmarks/_embed.py``; install notes in ``pyproject.toml``).

Sets (judged, scored with ``bench_relevance``'s metric code; nDCG@10 graded, recall at 10 and
100, averaged over questions with a relevant document):

- *cranfield*: 1,400 abstracts, 225 questions, graded human judgments.
- *chitchat-qa*: ``bench_fusion.chitchat_qa``: 6,392 turns of 400 conversations, 200
  questions, each judged by the reply that followed it; unscoped.
- *chitchat-sessions*: ``_chat_sessions``: 24 users' 545 sessions (14,669 turns), 288
  questions, each ONE search scoped to its user (all of that user's sessions), judged by the
  reply.
- *friendsqa-episode* and *friendsqa-season*: ``_friendsqa``: 5,183 turns of 249 scenes of
  *Friends*, 2,383 questions written by people, each judged by the turns holding its answer;
  each ONE search scoped to its episode (211-588 turns) or its season (1,004-1,566).

Rankings, 100 deep a side (``CANDIDATE_DEPTH``), fused with the library's own ``fuse`` (the
function every backend calls):

- *keyword k1/b*: our ``SearchIndex`` (default ``Indexing``) with BM25's ``K1``/``B`` set to
  each pair of ``KEYWORD_PARAMS`` (*b=by length* is the shipped b: 0.5 for short texts, 0.75
  for long ones, ``_bm25.length_b``); scoped searches use the scope's statistics, as in-process
  search does. *engine-like* is our BM25 at k1 1.2, b 0.75 with the namespace's statistics (an
  unscoped ranking filtered to the scope), our terms: what the Redis Query Engine was first
  taken to do. Only an approximation: its BM25STD is k1 1.2, b 0.5 (its EXPLAINSCORE says so),
  and ``bench_engine_bm25.py`` measures the real engine.
- *keyword stop words ...*: the shipped k1/b with another stop-word list (``STOP_VARIANTS``):
  Lucene's 33 English words (bm25s's ``"en"``), or none (tantivy's default): conversations
  are made of the words the shipped list sets aside ("where", "been", "you").
- *semantic*: all-MiniLM-L6-v2 cosine, exact, within the scope.
- *hybrid k1/b w*: the shipped hybrid. The question's vector takes keyword feedback from that
  keyword side (``_fusion.feedback``: moved 0.3 of the way toward its two best matches'
  vectors), the semantic side is searched with it, and ``fuse(keyword, semantic, w,
  ceiling)`` sums the fixed scale: BM25 as a share of the query's ``_bm25.ceiling``, cosine
  as it is. *... no feedback*: the same without the feedback (shipped until 2026-12-05).
  *min-max w*: the plain lists each rescaled to 0..1 over the candidates (the fusion before);
  *rrf* the plain lists by weighted reciprocal rank, for reference.
- peers *bm25s* and *tantivy* (``bench_relevance``'s engines; one index per scope on the
  scoped set, so they score with the scope's statistics too).

The paired bootstrap (2,000 resamples of the questions) gives the 95% interval of a hybrid's
per-question metric minus that of the better side alone (keyword with the same k1/b, or
semantic, whichever has the higher mean on that set and metric).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

import _friendsqa
import bench_fusion as bf
from _chat_sessions import build, describe, raw_conversations
from _embed import Embedder
from _timing import bench_main, table
from bench_relevance import bm25s_engine, gain, ndcg, tantivy_engine
from tta_dev_primitives.search import _bm25, _fusion
from tta_dev_primitives.search._analyzer import Analyzer
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._vector_index import as_unit_vector

#: (k1, b); b None is the shipped b, which follows the texts' average length (``_bm25.length_b``).
KEYWORD_PARAMS: tuple[tuple[float, float | None], ...] = (
    (1.5, None), (1.5, 0.75), (1.2, 0.75), (1.5, 0.5), (1.2, 0.5),
)  # fmt: skip
SHIPPED: tuple[float, float | None] = (1.5, None)
DEFAULT = "k1=1.5 b=by length"  # the shipped K1/b, against which the others are compared
# Lucene's English stop words (bm25s's "en" list), and none at all (tantivy's default).
LUCENE_STOP = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
))  # fmt: skip
STOP_VARIANTS: dict[str, frozenset[str] | None] = {
    "stop words lucene33": LUCENE_STOP,
    "stop words none": None,
}
WEIGHTS = (0.2, 0.3, 0.35, 0.4, 0.5, 0.6)
DEPTH = _fusion.CANDIDATE_DEPTH
QUICK = 40
BOOTSTRAP = 2000

Scored = list[tuple[str, float]]
Runs = dict[int, list[str]]
Ceilings = dict[int, float]


class ScopedSet(bf.Dataset):
    def __init__(self, name: str, docs: list[tuple[str, str]], queries: list[tuple[int, str]],
                 qrels: dict[int, dict[str, int]], exclude: dict[int, str],
                 scopes: dict[int, str]) -> None:  # fmt: skip
        super().__init__(name, docs, queries, qrels, exclude)
        self.scopes = scopes  # question -> the scope its one search is limited to


def datasets() -> list[bf.Dataset]:
    raw_ids = sorted(raw_conversations())
    skip = set(random.Random(bf.SEED).sample(raw_ids, bf.CHAT_CONVERSATIONS))
    docs, queries, qrels, own, scopes = build(skip)
    sessions = ScopedSet("chitchat-sessions", docs, queries, qrels, own, scopes)
    friends = [friendsqa(by) for by in (_friendsqa.EPISODE, _friendsqa.SEASON)]
    return [bf.cranfield(), bf.chitchat_qa(), sessions, *friends]


def friendsqa(scope_by: str) -> ScopedSet:
    docs, queries, qrels, scopes = _friendsqa.build(scope_by)
    return ScopedSet(f"friendsqa-{scope_by}", docs, queries, qrels, {}, scopes)


def scope_of(ds: bf.Dataset, qid: int) -> str | None:
    return ds.scopes.get(qid) if isinstance(ds, ScopedSet) else None


def in_scope(key: str, scope: str | None) -> bool:
    return scope is None or key.startswith(scope + ":")


# -- rankings --------------------------------------------------------------------------------


def keyword_runs(
    ds: bf.Dataset, index: SearchIndex, k1: float, b: float | None,
    namespace_stats: bool = False,
    indexing: Indexing | None = None,
) -> tuple[dict[int, Scored], Ceilings]:  # fmt: skip
    """Our BM25 with ``k1``/``b`` (b None: the shipped, by length), and each question's
    ``_bm25.ceiling`` (hybrid's keyword scale); ``namespace_stats``: a scoped question
    ranked with the namespace's statistics (unscoped, then filtered), as the Query Engine
    ranks it; ``indexing``: the one ``index`` was built with (the default analyzer if
    None)."""
    indexing = indexing or Indexing()
    saved = _bm25.K1, _bm25.B, _bm25.SHORT_B
    _bm25.K1 = k1
    if b is not None:  # one b whatever the length
        _bm25.B = _bm25.SHORT_B = b
    try:
        runs, ceilings = {}, {}
        for qid, text in ds.queries:
            scope = scope_of(ds, qid)
            query = indexing.query(text)
            if namespace_stats and scope is not None:
                scored = index.search_scored(query, len(ds.docs))
                scored = [(d, s) for d, s in scored if in_scope(d, scope)]
                scope = None
            else:
                scored = index.search_scored(query, DEPTH + 1, scope)
            runs[qid] = [(d, s) for d, s in scored if d != ds.exclude.get(qid)][:DEPTH]
            ceilings[qid] = index.keyword_ceiling(query, scope)
        return runs, ceilings
    finally:
        _bm25.K1, _bm25.B, _bm25.SHORT_B = saved


_VECTORS: dict[int, tuple[Any, Any]] = {}


def vectors_of(ds: bf.Dataset, embedder: Embedder) -> tuple[Any, Any]:
    """The documents' and the questions' unit vectors (once per set)."""
    if id(ds) not in _VECTORS:
        docs = embedder.embed([text for _, text in ds.docs])
        questions = embedder.embed([text for _, text in ds.queries])
        _VECTORS[id(ds)] = (
            np.stack([as_unit_vector(v) for v in docs]),
            np.stack([as_unit_vector(v) for v in questions]),
        )
    return _VECTORS[id(ds)]


def semantic_runs(
    ds: bf.Dataset, embedder: Embedder, keyword: dict[int, Scored] | None = None
) -> dict[int, Scored]:
    """Cosine within each question's scope; with ``keyword`` (a hybrid's keyword side), the
    question's vector first takes keyword feedback from it, as every backend's hybrid does
    (``_fusion.feedback``: moved toward its best keyword matches' vectors)."""
    matrix, questions = vectors_of(ds, embedder)
    ids = np.array([docid for docid, _ in ds.docs], dtype=object)
    row = {docid: i for i, (docid, _) in enumerate(ds.docs)}
    rows: dict[str | None, Any] = {None: np.arange(len(ids))}
    runs = {}
    for (qid, _), q in zip(ds.queries, questions, strict=True):
        if keyword is not None:
            best = keyword[qid][: _fusion.FEEDBACK_DOCS]
            q = _fusion.feedback(q, [matrix[row[d]] for d, _ in best])
        scope = scope_of(ds, qid)
        if scope not in rows:
            rows[scope] = np.array([i for i, d in enumerate(ids) if in_scope(d, scope)])
        members = rows[scope]
        sims = matrix[members] @ q
        top = np.argsort(-sims, kind="stable")[: DEPTH + 1]
        scored = [(ids[members[i]], float(sims[i])) for i in top]
        runs[qid] = [(d, s) for d, s in scored if d != ds.exclude.get(qid)][:DEPTH]
    return runs


def peer_runs(ds: bf.Dataset, make: Callable[[list[tuple[str, str]]], Any]) -> Runs:
    """A peer's rankings; one index per scope on a scoped set (the scope's statistics)."""
    engines: dict[str | None, Any] = {}
    runs = {}
    for qid, text in ds.queries:
        scope = scope_of(ds, qid)
        if scope not in engines:
            engines[scope] = make([(d, t) for d, t in ds.docs if in_scope(d, scope)])
        runs[qid] = [d for d in engines[scope](text) if d != ds.exclude.get(qid)]
    return runs


# -- fusion ----------------------------------------------------------------------------------


def fused(kw: Scored, sem: Scored, weight: float, ceiling: float,
          method: str = "weighted") -> list[str]:  # fmt: skip
    """The library's own fusion of the two lists, best first (ties by id: deterministic);
    ``method="min-max"``: the fusion before, each side rescaled over its candidates."""
    if method == "min-max":
        kw_n, sem_n = min_max(kw), min_max(sem)
        scores = {d: (1.0 - weight) * s for d, s in kw_n.items()}
        for d, s in sem_n.items():
            scores[d] = scores.get(d, 0.0) + weight * s
    else:
        scores = _fusion.fuse(kw, sem, weight, ceiling, "rrf" if method == "rrf" else "weighted")
    return sorted(scores, key=lambda d: (-scores[d], d))[:DEPTH]


def min_max(scored: Scored) -> dict[str, float]:
    """Scores rescaled to 0..1 over the list (all 1.0 when equal)."""
    if not scored:
        return {}
    low, high = min(s for _, s in scored), max(s for _, s in scored)
    return {d: 1.0 if high <= low else (s - low) / (high - low) for d, s in scored}


# -- metrics ---------------------------------------------------------------------------------


def recall_at(ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {d for d, rel in judged.items() if gain(rel) > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant)


METRICS: dict[str, Callable[[list[str], dict[str, int]], float]] = {
    "nDCG@10": lambda r, j: ndcg(r, j),
    "R@10": lambda r, j: recall_at(r, j, 10),
    "R@100": lambda r, j: recall_at(r, j, 100),
}


def per_question(runs: Runs, ds: bf.Dataset) -> dict[str, list[float]]:
    qids = [q for q, _ in ds.queries if any(gain(r) > 0 for r in ds.qrels[q].values())]
    return {m: [f(runs[q], ds.qrels[q]) for q in qids] for m, f in METRICS.items()}


def paired_ci(a: list[float], b: list[float]) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(a - b), questions resampled in pairs."""
    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(bf.SEED)
    means = diff[rng.integers(0, len(diff), (BOOTSTRAP, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def top10_overlap(a: Runs, b: Runs) -> float:
    """Mean share of the top 10 two systems have in common (issue 18's parity measure)."""
    return statistics.fmean(
        len(set(a[q][:10]) & set(b[q][:10])) / max(1, min(10, len(a[q]), len(b[q])))
        for q in a
        if a[q] or b[q]
    )


def indexed(ds: bf.Dataset, indexing: Indexing) -> SearchIndex:
    index = SearchIndex()
    for docid, text in ds.docs:
        index.add(docid, indexing.terms({"content": text}))
    return index


def run_set(ds: bf.Dataset, embedder: Embedder) -> dict[str, Any]:
    index = indexed(ds, Indexing())
    sem = semantic_runs(ds, embedder)
    systems: dict[str, Runs] = {"semantic": {q: [d for d, _ in r] for q, r in sem.items()}}
    sides: dict[str, tuple[str, str]] = {}  # hybrid -> (its keyword side, semantic)
    kw_sets = {
        f"k1={k1} b={'by length' if b is None else b}": keyword_runs(ds, index, k1, b)
        for k1, b in KEYWORD_PARAMS
    }
    for label, stop in STOP_VARIANTS.items():
        indexing = Indexing(Analyzer(stop_words=stop))
        kw_sets[label] = keyword_runs(ds, indexed(ds, indexing), *SHIPPED, indexing=indexing)
    if isinstance(ds, ScopedSet):
        kw_sets["engine-like"] = keyword_runs(ds, index, 1.2, 0.75, namespace_stats=True)
    for label, (kw, top) in kw_sets.items():
        systems[f"keyword {label}"] = {q: [d for d, _ in r] for q, r in kw.items()}
        near = semantic_runs(ds, embedder, kw)  # with this keyword side's feedback
        for w in WEIGHTS:
            systems[f"hybrid {label} w={w}"] = {
                q: fused(kw[q], near[q], w, top[q]) for q, _ in ds.queries
            }
            sides[f"hybrid {label} w={w}"] = (f"keyword {label}", "semantic")
        if label == DEFAULT:
            for w in WEIGHTS:
                name = f"hybrid {label} w={w} no feedback"
                systems[name] = {q: fused(kw[q], sem[q], w, top[q]) for q, _ in ds.queries}
                sides[name] = (f"keyword {label}", "semantic")
            for method, weights in (("min-max", WEIGHTS), ("rrf", (0.5,))):
                for w in weights:
                    systems[f"{method} {label} w={w}"] = {
                        q: fused(kw[q], sem[q], w, top[q], method) for q, _ in ds.queries
                    }
                    sides[f"{method} {label} w={w}"] = (f"keyword {label}", "semantic")
    systems["bm25s"] = peer_runs(ds, bm25s_engine)
    systems["tantivy"] = peer_runs(ds, tantivy_engine)
    scores = {name: per_question(runs, ds) for name, runs in systems.items()}
    means = {name: {m: statistics.fmean(v) for m, v in s.items()} for name, s in scores.items()}
    vs_better: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, (kw_name, sem_name) in sides.items():
        vs_better[name] = {}
        for m in ("nDCG@10", "R@10"):
            best = max((kw_name, sem_name), key=lambda s, m=m: means[s][m])
            lo, hi = paired_ci(scores[name][m], scores[best][m])
            vs_better[name][m] = (means[name][m] - means[best][m], lo, hi)
    # Each keyword setting against the shipped one (paired), and its top 10 against
    # engine-like's (keyword alone, and hybrid at w=0.5 where both fuse the same semantic list).
    vs_default = {
        label: {m: paired_ci(scores[f"keyword {label}"][m], scores[f"keyword {DEFAULT}"][m])
                for m in ("nDCG@10", "R@10", "R@100")}
        for label in kw_sets
    }  # fmt: skip
    engine = "engine-like" if "engine-like" in kw_sets else "k1=1.2 b=0.75"
    parity = {
        label: (top10_overlap(systems[f"keyword {label}"], systems[f"keyword {engine}"]),
                top10_overlap(systems[f"hybrid {label} w=0.5"], systems[f"hybrid {engine} w=0.5"]))
        for label in kw_sets
    }  # fmt: skip

    def shipped_minus(other: str) -> dict[str, dict[str, tuple[float, float, float]]]:
        """The shipped hybrid minus ``other`` (a system name with ``{w}``), weight for weight:
        mean and 95% paired interval."""
        out = {}
        for w in WEIGHTS:
            a, b = f"hybrid {DEFAULT} w={w}", other.format(w=w)
            out[f"w={w}"] = {
                m: (means[a][m] - means[b][m], *paired_ci(scores[a][m], scores[b][m]))
                for m in ("nDCG@10", "R@10")
            }
        return out

    # The fixed scale against the min-max fusion it replaced; keyword feedback against none.
    vs_minmax = shipped_minus(f"min-max {DEFAULT} w={{w}}")
    vs_plain = shipped_minus(f"hybrid {DEFAULT} w={{w}} no feedback")
    info = {"documents": len(ds.docs), "questions": len(ds.queries)}
    if ds.name == "chitchat-sessions":
        info |= describe(ds.docs, ds.scopes)
    elif isinstance(ds, ScopedSet):
        sizes = sorted(sum(in_scope(d, sc) for d, _ in ds.docs) for sc in set(ds.scopes.values()))
        info |= {"scopes": len(sizes), "scope_min": sizes[0], "scope_max": sizes[-1]}
    return {"info": info, "means": means, "vs_better": vs_better, "vs_default": vs_default,
            "vs_minmax": vs_minmax, "vs_plain": vs_plain, "parity": parity}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    embedder = Embedder()
    out: dict[str, Any] = {"quick": args.quick, "sets": {}}
    for ds in datasets():
        if args.quick:
            ds.queries = ds.queries[:QUICK]
        out["sets"][ds.name] = run_set(ds, embedder)
    return out


def report(figures: dict[str, Any]) -> None:
    sets = figures["sets"]
    for name, s in sets.items():
        print(f"{name}: {s['info']}")
    names = list(sets)
    systems = list(sets[names[-1]]["means"])
    headers = ["system"]
    for n in names:
        headers += [f"{n} nDCG@10", f"{n} R@10"]
    headers += ["cran R@100"]
    rows = []
    for system in systems:
        row: list[object] = [system]
        for n in names:
            m = sets[n]["means"].get(system)
            row += [m["nDCG@10"], m["R@10"]] if m else ["-", "-"]
        m = sets[names[0]]["means"].get(system)
        row.append(m["R@100"] if m else "-")
        rows.append(row)
    print(table(headers, rows))
    print("\nhybrid minus its better side: mean [95% paired bootstrap interval]")
    headers, rows = ["hybrid"], []
    for n in names:
        headers += [f"{n} nDCG@10", f"{n} R@10"]
    for system in sets[names[-1]]["vs_better"]:
        row = [system]
        for n in names:
            v = sets[n]["vs_better"].get(system)
            row += (
                [f"{d:+.3f} [{lo:+.3f}..{hi:+.3f}]" for d, lo, hi in v.values()] if v else ["-"] * 2
            )
        rows.append(row)
    print(table(headers, rows))
    by_weight(sets, "vs_minmax", "fixed-scale hybrid minus min-max")
    by_weight(sets, "vs_plain", "hybrid with keyword feedback minus without")
    print(f"\nkeyword setting minus the shipped {DEFAULT}: 95% paired bootstrap interval")
    headers, rows = ["keyword"], []
    for n in names:
        headers += [f"{n} nDCG@10", f"{n} R@10", f"{n} R@100"]
    for label in sets[names[-1]]["vs_default"]:
        row = [label]
        for n in names:
            v = sets[n]["vs_default"].get(label)
            row += [f"{lo:+.3f}..{hi:+.3f}" for lo, hi in v.values()] if v else ["-"] * 3
        rows.append(row)
    print(table(headers, rows))
    print(
        "\ntop-10 overlap with engine-like (OUR BM25 at k1 1.2 b 0.75, namespace statistics: "
        "not the real engine, see bench_engine_bm25.py): keyword alone / hybrid w=0.5"
    )
    for n in names:
        print(
            f"  {n}: "
            + ", ".join(f"{k} {a:.3f}/{b:.3f}" for k, (a, b) in sets[n]["parity"].items())
        )
    print("\nhybrid done")


def by_weight(sets: dict[str, Any], key: str, title: str) -> None:
    """A table of ``run_set``'s ``key`` (``shipped_minus``'s) for every set."""
    names = list(sets)
    print(f"\n{title}, at the same weight: mean [95% interval]")
    headers, rows = ["weight"], []
    for n in names:
        headers += [f"{n} nDCG@10", f"{n} R@10"]
    for w in sets[names[-1]][key]:
        row = [w]
        for n in names:
            row += [f"{d:+.3f} [{lo:+.3f}..{hi:+.3f}]" for d, lo, hi in sets[n][key][w].values()]
        rows.append(row)
    print(table(headers, rows))


def main() -> None:
    bench_main(__doc__ or "", main_async, report)


if __name__ == "__main__":
    main()
