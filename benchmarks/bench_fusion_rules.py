"""Adaptive fusion rules against fixed weights: hybrid at or above its better side? (issue 21)

Run: ``.venv/bin/python benchmarks/bench_fusion_rules.py`` (``--quick``: 20 questions a set on
a slice of the memories, a smoke run; ``--json PATH`` saves the figures). Needs the ``bench``
extra and the offline embedder; reads ``bench_hybrid``'s embedding cache when it is there.

The sets of ``bench_hybrid`` (cranfield, chitchat-qa, chitchat-sessions, friendsqa by episode
and by season), ranked as there: our BM25 at the shipped k1/b and MiniLM, 100 candidates a
side. Each rule turns a question's two lists (and its ``_bm25.ceiling``) into one ranking;
the *keyword feedback* rows (``FEEDBACK_RULES``, the shipped hybrid) fuse the semantic list
searched with the question's vector moved toward its best keyword matches (``_fusion.feedback``).
Reported: hybrid minus its better side alone (keyword or semantic, whichever has the higher
mean on that set and metric), nDCG@10 and recall@10, with ``bench_hybrid``'s 95% paired
bootstrap interval (fixed seed).

*known-item* is a keyword-leaning guard, not tuned on: simulated known-item questions on the
chitchat-sessions memories (Azzopardi-style). For a target turn of 8-40 words, 1-2 of its rare
words (at most 2% of its user's turns, drawn by idf) plus 2 words from another turn of its
session, in a question frame; the target is the one relevant memory; scoped to its user.
A rule that wins the reply-finding sets by dropping the keyword side shows here.

*Union rules* (``UNION_RULES``) see more: every candidate of either list scored on both sides
(its true cosine and BM25), so a rule can weigh a keyword match by how close it is in meaning.

Last, per user of chitchat-sessions, the fixed weight with the best nDCG@10 on its reply
questions and on its known-item ones: a calibration on a memory's own data gives one weight.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

import bench_fusion as bf
import bench_hybrid as bh
from _embed import Embedder
from _timing import bench_main
from tta_dev_primitives.memory._primitive import HYBRID_WEIGHT
from tta_dev_primitives.search import _fusion
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import Indexing

QUICK = 20
QUICK_USERS = 1  # --quick: a scoped set's first scope (in sorted order) only
QUICK_DOCS = 300  # --quick: the unscoped sets' first documents (plus the judged ones)
GUARD_SEED = 777
GUARD_TARGETS, GUARD_NOISE = (1, 2), 2
FRAMES = ("what about {}?", "when did we talk about {}?", "who mentioned {}?", "{}?")
USER_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)

Scored = bh.Scored
Rule = Callable[[Scored, Scored, float], "dict[str, float] | list[str]"]
#: A rule over both lists, the question's ceiling, and every candidate's cosine and BM25.
UnionRule = Callable[
    [Scored, Scored, float, "dict[str, float]", "dict[str, float]"], "dict[str, float]"
]


# -- the guard set ---------------------------------------------------------------------------


def known_item(sessions: bh.ScopedSet) -> bh.ScopedSet:
    indexing = Indexing()
    text_of = dict(sessions.docs)
    by_scope: dict[str, list[str]] = {}
    for key, _ in sessions.docs:
        by_scope.setdefault(key.split(":")[0], []).append(key)

    def term(word: str) -> str | None:  # a dummy first word: a lone word is analysed alike
        terms = indexing.query("zzqx " + word.lower()).terms
        return terms[1] if len(terms) > 1 else None

    rng = random.Random(GUARD_SEED)
    queries: list[tuple[int, str]] = []
    qrels: dict[int, dict[str, int]] = {}
    scopes: dict[int, str] = {}
    for scope in sorted(by_scope):
        keys, df = by_scope[scope], Counter[str]()
        for k in keys:
            df.update(set(indexing.query(text_of[k].lower()).terms))
        n = len(keys)
        targets = [k for k in keys if 8 <= len(text_of[k].split()) <= 40]
        for k in rng.sample(targets, min(12, len(targets))):
            words: list[tuple[str, float]] = []
            for w in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", text_of[k]):
                t = term(w)
                if t and w.lower() not in {x.lower() for x, _ in words} and df[t] <= 0.02 * n:
                    words.append((w, math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))))
            if len(words) < 2:
                continue
            picked: list[str] = []
            for _ in range(min(len(words), rng.choice(GUARD_TARGETS))):  # by idf, no repeats
                x, j = rng.random() * sum(i for _, i in words), 0
                for j, (_, idf) in enumerate(words):  # noqa: B007
                    x -= idf
                    if x <= 0:
                        break
                picked.append(words.pop(j)[0])
            session = k.rsplit(":", 1)[0]
            others = [o for o in keys if o.rsplit(":", 1)[0] == session and o != k]
            if others:
                noise = re.findall(r"[A-Za-z][A-Za-z'-]{3,}", text_of[rng.choice(others)])
                noise = [w for w in noise if (t := term(w)) and df[t] <= 0.05 * n]
                for _ in range(GUARD_NOISE):
                    if noise:
                        picked.insert(rng.randrange(len(picked) + 1), rng.choice(noise))
            qid = len(queries) + 1
            queries.append((qid, rng.choice(FRAMES).format(" ".join(picked))))
            qrels[qid], scopes[qid] = {k: 1}, scope
    return bh.ScopedSet("known-item", sessions.docs, queries, qrels, {}, scopes)


def shrink(ds: bf.Dataset) -> None:
    """--quick: 20 questions on a slice of the memories (a few users, or the first documents
    plus the judged ones), so an empty embedding cache costs seconds."""
    if isinstance(ds, bh.ScopedSet):
        users = sorted(set(ds.scopes.values()))[:QUICK_USERS]
        ds.docs = [(d, t) for d, t in ds.docs if any(bh.in_scope(d, u) for u in users)]
        ds.queries = [(q, t) for q, t in ds.queries if ds.scopes[q] in users][:QUICK]
    else:
        ds.queries = ds.queries[:QUICK]
        keep = {d for q, _ in ds.queries for d in ds.qrels[q]}
        keep |= {d for d, _ in ds.docs[:QUICK_DOCS]}
        ds.docs = [(d, t) for d, t in ds.docs if d in keep]


# -- the rules -------------------------------------------------------------------------------


def share(score: float, ceiling: float) -> float:
    return min(max(score / ceiling, 0.0), 1.0) if ceiling > 0 else 0.0


def fixed(w: float) -> Rule:
    return lambda kw, sem, c: _fusion.weighted_sum(kw, sem, w, c)


def share_squared(w: float) -> Rule:
    def rule(kw: Scored, sem: Scored, c: float) -> dict[str, float]:
        fused = {i: (1 - w) * share(s, c) ** 2 for i, s in kw}
        for i, s in sem:
            fused[i] = fused.get(i, 0.0) + w * min(max(s, 0.0), 1.0)
        return fused

    return rule


def per_query(w: float, weight_of: Callable[[Scored, Scored, float, float], float]) -> Rule:
    return lambda kw, sem, c: _fusion.weighted_sum(kw, sem, weight_of(kw, sem, c, w), c)


def by_drop(kw: Scored, sem: Scored, c: float, w: float) -> float:
    """``w*Ds / (w*Ds + (1-w)*Dk)``: each side's fall over its own top 10 (no parameter)."""
    if not kw or c <= 0:
        return 1.0
    dk = share(kw[0][1], c) - share(kw[:10][-1][1], c)
    ds = sem[0][1] - sem[:10][-1][1]
    return 1.0 if dk <= 0 else 0.0 if ds <= 0 else w * ds / (w * ds + (1 - w) * dk)


def by_top1(kw: Scored, sem: Scored, c: float, w: float, r0: float = 0.6, g: float = 4) -> float:
    """Semantic weight falls as keyword's top share grows against semantic's top cosine."""
    r = (kw[0][1] / c if kw and c > 0 else 0.0) / max(sem[0][1], 1e-9)
    return 1.0 if r <= 0 else 1.0 / (1.0 + ((1 - w) / w) * (r / r0) ** g)


def comb_mnz(w: float, boost: float) -> Rule:
    def rule(kw: Scored, sem: Scored, c: float) -> dict[str, float]:
        both = {i for i, _ in kw} & {i for i, _ in sem}
        fused = _fusion.weighted_sum(kw, sem, w, c)
        return {i: v * (1 + boost) if i in both else v for i, v in fused.items()}

    return rule


def rerank_semantic(w: float, n: int) -> Rule:
    def rule(kw: Scored, sem: Scored, c: float) -> list[str]:
        fused = _fusion.weighted_sum(kw, sem, w, c)
        head = sorted((i for i, _ in sem[:n]), key=lambda i: (-fused[i], i))
        return head + [i for i, _ in sem[n:]]

    return rule


#: Fixed weights over the semantic side searched with keyword feedback (``_fusion.feedback``):
#: what every backend's hybrid does since 2026-12-05.
FEEDBACK_RULES: dict[str, Rule] = {
    f"shipped: keyword feedback, w={HYBRID_WEIGHT}": fixed(HYBRID_WEIGHT),
    "keyword feedback, w=0.35": fixed(0.35),
    "keyword feedback, w=0.5": fixed(0.5),
    "keyword feedback, w=0.6": fixed(0.6),
}
RULES: dict[str, Rule] = {
    "w=0.35 (shipped until 2026-12-05)": fixed(0.35),
    "w=0.3": fixed(0.3),
    "w=0.4": fixed(0.4),
    "w=0.5 (shipped before)": fixed(0.5),
    "w=0.8": fixed(0.8),
    "w=0.9": fixed(0.9),
    "w=0.98": fixed(0.98),
    "keyword share squared": share_squared(0.5),
    "weight by each side's top-10 drop": per_query(0.5, by_drop),
    "weight by top-1 ratio": per_query(0.5, by_top1),
    "CombMNZ (+30% for both sides)": comb_mnz(0.5, 0.3),
    "keyword re-orders semantic's top 10": rerank_semantic(0.5, 10),
}


def times_share(a: float) -> UnionRule:
    """The cosine, raised by ``a`` x the keyword share: a keyword match counts only as far as
    the memory is close in meaning."""
    return lambda kw, sem, c, cos, bm: {d: max(v, 0.0) * (1 + a * share(bm[d], c))
                                        for d, v in cos.items()}  # fmt: skip


def cosine_gated(w: float, p: float) -> UnionRule:
    """The shipped sum, its keyword share scaled by (cosine / the best cosine) ** p."""

    def rule(kw: Scored, sem: Scored, c: float, cos: dict[str, float],
             bm: dict[str, float]) -> dict[str, float]:  # fmt: skip
        best = max(max(cos.values()), 1e-9)
        return {d: w * max(v, 0.0) + (1 - w) * share(bm[d], c) * (max(v, 0.0) / best) ** p
                for d, v in cos.items()}  # fmt: skip

    return rule


def share_above(w: float, floor: float) -> UnionRule:
    """The shipped sum, counting a keyword share only above ``floor`` (a strong match)."""
    return lambda kw, sem, c, cos, bm: {
        d: w * max(v, 0.0) + (1 - w) * (x if (x := share(bm[d], c)) > floor else 0.0)
        for d, v in cos.items()
    }


def min_max_union(w: float) -> UnionRule:
    """Each side rescaled to 0..1 over the union, every candidate scored on both."""

    def rule(kw: Scored, sem: Scored, c: float, cos: dict[str, float],
             bm: dict[str, float]) -> dict[str, float]:  # fmt: skip
        top, low, high = max(bm.values()) or 1.0, min(cos.values()), max(cos.values())
        return {d: (1 - w) * bm[d] / top + w * ((v - low) / (high - low) if high > low else 1.0)
                for d, v in cos.items()}  # fmt: skip

    return rule


UNION_RULES: dict[str, UnionRule] = {
    "cosine x (1 + 0.5 share)": times_share(0.5),
    "cosine x (1 + 4 share)": times_share(4.0),
    "keyword gated by cosine^2 (w=0.5)": cosine_gated(0.5, 2.0),
    "keyword share above 0.2 only (w=0.7)": share_above(0.7, 0.2),
    "min-max over both lists (w=0.5)": min_max_union(0.5),
}


# -- measuring -------------------------------------------------------------------------------


def both_sides(ds: bf.Dataset, index: SearchIndex, indexing: Indexing, embedder: Embedder,
               kw: dict[int, Scored], sem: dict[int, Scored],
               ) -> dict[int, tuple[dict[str, float], dict[str, float]]]:  # fmt: skip
    """Per question, every candidate's cosine and BM25 (zero where it matches no term)."""
    matrix = embedder.embed([text for _, text in ds.docs])
    vectors = embedder.embed([text for _, text in ds.queries])
    row = {docid: i for i, (docid, _) in enumerate(ds.docs)}
    out = {}
    for (qid, text), vector in zip(ds.queries, vectors, strict=True):
        union = {d for d, _ in kw[qid]} | {d for d, _ in sem[qid]}
        scored = dict(index.search_scored(indexing.query(text), len(ds.docs),
                                          bh.scope_of(ds, qid)))  # fmt: skip
        out[qid] = ({d: float(matrix[row[d]] @ vector) for d in union},
                    {d: scored.get(d, 0.0) for d in union})  # fmt: skip
    return out


def ranked(scores: dict[str, float] | list[str]) -> list[str]:
    if isinstance(scores, list):
        return scores
    return sorted(scores, key=lambda d: (-scores[d], d))[: bh.DEPTH]


def run_set(ds: bf.Dataset, embedder: Embedder) -> dict[str, Any]:
    index, indexing = SearchIndex(), Indexing()
    for docid, text in ds.docs:
        index.add(docid, indexing.terms({"content": text}))
    kw, ceilings = bh.keyword_runs(ds, index, *bh.SHIPPED)
    sem = bh.semantic_runs(ds, embedder)
    qs = [q for q, _ in ds.queries]
    systems = {"keyword": {q: [d for d, _ in kw[q]] for q in qs},
               "semantic": {q: [d for d, _ in sem[q]] for q in qs}}  # fmt: skip
    for name, rule in RULES.items():
        systems[name] = {q: ranked(rule(kw[q], sem[q], ceilings[q])) for q in qs}
    near = bh.semantic_runs(ds, embedder, kw)
    for name, rule in FEEDBACK_RULES.items():
        systems[name] = {q: ranked(rule(kw[q], near[q], ceilings[q])) for q in qs}
    union = both_sides(ds, index, indexing, embedder, kw, sem)
    for name, union_rule in UNION_RULES.items():
        systems[name] = {
            q: ranked(union_rule(kw[q], sem[q], ceilings[q], *union[q]) if union[q][0] else {})
            for q in qs
        }
    scores = {name: bh.per_question(runs, ds) for name, runs in systems.items()}
    means = {n: {m: statistics.fmean(v) for m, v in s.items()} for n, s in scores.items()}
    vs_better: dict[str, dict[str, list[float]]] = {}
    for name in [*FEEDBACK_RULES, *RULES, *UNION_RULES]:
        vs_better[name] = {}
        for m in ("nDCG@10", "R@10"):
            best = "keyword" if means["keyword"][m] >= means["semantic"][m] else "semantic"
            lo, hi = bh.paired_ci(scores[name][m], scores[best][m])
            vs_better[name][m] = [means[name][m] - means[best][m], lo, hi]
    by_user: dict[str, list[list[float]]] = {}
    if isinstance(ds, bh.ScopedSet):  # each user's best fixed weight, for the last table
        judged = [q for q in qs if q in kw]
        for q in judged:
            row = [bh.METRICS["nDCG@10"](ranked(fixed(w)(kw[q], sem[q], ceilings[q])),
                                         ds.qrels[q]) for w in USER_WEIGHTS]  # fmt: skip
            by_user.setdefault(ds.scopes[q], []).append(row)
    best_w = {u: USER_WEIGHTS[int(np.argmax(np.mean(v, axis=0)))] for u, v in by_user.items()}
    return {"questions": len(qs), "documents": len(ds.docs), "means": means,
            "vs_better": vs_better, "best_weight_by_user": best_w}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    embedder = Embedder()
    sets = bh.datasets()
    if args.quick:
        for ds in sets:
            shrink(ds)
    (sessions,) = (ds for ds in sets if ds.name == "chitchat-sessions")
    assert isinstance(sessions, bh.ScopedSet)
    sets.append(known_item(sessions))
    if args.quick:
        sets[-1].queries = sets[-1].queries[:QUICK]
    return {"quick": args.quick, "sets": {ds.name: run_set(ds, embedder) for ds in sets}}


def cell(v: list[float]) -> str:
    a, lo, hi = (f"{x:+.3f}".replace("0.", ".", 1) for x in v)
    return f"{a} ({lo}..{hi})"


def report(figures: dict[str, Any]) -> None:
    sets = figures["sets"]
    for name, s in sets.items():
        m = s["means"]
        print(f"{name}: {s['questions']} questions, {s['documents']} memories; keyword "
              f"{m['keyword']['nDCG@10']:.3f} / {m['keyword']['R@10']:.3f}, semantic "
              f"{m['semantic']['nDCG@10']:.3f} / {m['semantic']['R@10']:.3f}")  # fmt: skip
    judged = [n for n in sets if n != "known-item"]
    guard = sets["known-item"]["means"]
    print("\nhybrid minus its better side, mean (95% paired bootstrap interval); "
          "known-item: the rule's own nDCG@10 / R@10\n")  # fmt: skip
    head = [f"{n} {m}" for n in judged for m in ("nDCG@10", "R@10")]
    print("| rule | " + " | ".join(head) + " | known-item | at or above everywhere |")
    print("|---" * (len(head) + 3) + "|")
    for rule in [*FEEDBACK_RULES, *RULES, *UNION_RULES]:
        diffs = [sets[n]["vs_better"][rule][m] for n in judged for m in ("nDCG@10", "R@10")]
        meets = "yes" if all(d[0] >= 0 for d in diffs) else "no"
        g = guard[rule]
        print(f"| {rule} | " + " | ".join(cell(d) for d in diffs)
              + f" | {g['nDCG@10']:.3f} / {g['R@10']:.3f} | {meets} |")  # fmt: skip
    reply = sets["chitchat-sessions"]["best_weight_by_user"]
    known = sets["known-item"]["best_weight_by_user"]
    users = sorted(set(reply) & set(known), key=lambda u: int(u[1:]))
    print(f"\nbest fixed weight per user (of {USER_WEIGHTS}), reply questions / known-item:")
    print("  " + ", ".join(f"{u} {reply[u]}/{known[u]}" for u in users))
    print(f"  users whose reply questions want w >= 0.7: {sum(reply[u] >= 0.7 for u in users)}"
          f" of {len(users)}; whose known-item questions want w <= 0.3: "
          f"{sum(known[u] <= 0.3 for u in users)} of {len(users)}")  # fmt: skip
    print("\nfusion rules done")


def main() -> None:
    bench_main(__doc__ or "", main_async, report)


if __name__ == "__main__":
    main()
