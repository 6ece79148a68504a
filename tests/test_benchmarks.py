"""The benchmarks still run (quick mode): they are how the project measures itself.

No figure is asserted (machines are noisy); each run must finish and print its report. The
comparisons with LangChain and LangGraph run here too: the test command installs both extras.
bench_relevance's peers (bm25s, tantivy) come only with the bench extra; without them it runs
SQLite FTS5 and ours and notes the skipped peers.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
#: Benchmarks that embed with MiniLM need the ``bench`` extra (torch), which the test command
#: does not install: they run where it is installed.
NEEDS_EMBEDDER = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="needs the bench extra (sentence-transformers and a CPU torch)",
)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


#: bench_langgraph_redis.py's peer, LangGraph's RedisStore, comes only with the bench extra.
NEEDS_REDISSTORE = pytest.mark.skipif(
    not _importable("langgraph.store.redis"),
    reason="needs the bench extra (langgraph-checkpoint-redis)",
)


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("bench_memory.py", ["--quick", "--sizes", "2000", "--question-sizes", ""], "x faster"),
        ("bench_memory.py", ["--quick", "--sizes", ""], "ours/peer p50"),
        ("bench_composition.py", ["--quick"], "LCEL"),
        ("bench_langgraph.py", ["--quick"], "langgraph store comparison done"),
        ("bench_cold_start.py", ["--quick"], "cold start done"),
        ("bench_relevance.py", ["--quick"], "relevance done"),
        ("bench_scopes.py", ["--quick", "--rounds", "2"], "p50 / unscoped"),
        ("bench_languages.py", [], "hit@5 by kind"),
        ("bench_filter.py", ["--quick"], "filter benchmark done"),
        ("bench_churn.py", ["--quick", "--size", "3000"], "churn done"),
        ("bench_churn.py", ["--quick", "--size", "3000", "--keyword-only"], "churn done"),
        pytest.param("bench_fusion_rules.py", ["--quick"], "fusion rules done",
                     marks=NEEDS_EMBEDDER),
        pytest.param("bench_redis.py", ["--quick", "--question-size", "0"],
                     "replay after an outage", marks=pytest.mark.redis),
        pytest.param("bench_redis.py", ["--quick", "--questions-only"],
                     "fallbacks during the run: 0", marks=pytest.mark.redis),
        pytest.param("bench_cluster.py", ["--quick"], "per master", marks=pytest.mark.redis),
        pytest.param("bench_outage.py", ["--quick"], "outage replay done", marks=pytest.mark.redis),
        pytest.param("bench_reshard.py", ["--quick"], "reshard benchmark done",
                     marks=pytest.mark.redis),
        pytest.param("bench_replicated_writes.py", ["--quick"], "replicated writes done",
                     marks=pytest.mark.redis),
        pytest.param("bench_journal.py", ["--quick"], "journal benchmark done",
                     marks=pytest.mark.redis),
        pytest.param("bench_vectors.py", ["--quick"], "vectors done", marks=pytest.mark.redis),
        # (Its cluster comparison is bench_cluster.py's smoke run's, above: not twice.)
        pytest.param("bench_scaleout.py", ["--quick", "--cluster-size", "0"], "scaleout done",
                     marks=pytest.mark.redis),
        pytest.param("bench_langgraph_redis.py", ["--quick"],
                     "langgraph redis store comparison done",
                     marks=[pytest.mark.redis, NEEDS_REDISSTORE]),
        pytest.param("bench_scope_replicas.py", ["--quick"], "scope replicas done",
                     marks=pytest.mark.redis),
        pytest.param("bench_scoped_writes.py", ["--quick"], "scoped writes done",
                     marks=pytest.mark.redis),
        pytest.param("bench_forget.py", ["--quick"], "fresh_process_after",
                     marks=pytest.mark.redis),
        pytest.param("bench_engine_parity.py", ["--quick"], "| redis |", marks=pytest.mark.redis),
        pytest.param("bench_engine_rewrites.py", ["--quick"], "| name |",
                     marks=pytest.mark.redis),
        pytest.param("bench_backfill_workers.py", ["--size", "2000", "--workers", "2"],
                     '"workers": 2', marks=pytest.mark.redis),
        pytest.param("bench_large_values.py", ["--quick", "--redis"], "large values done",
                     marks=pytest.mark.redis),
        pytest.param("bench_engine_timeout.py", ["--size", "2000", "--questions", "5"],
                     "ON_TIMEOUT FAIL, user", marks=pytest.mark.redis),
        pytest.param("bench_million.py", ["--size", "3000", "--questions", "5", "--burst", "2",
                     "--burst-questions", "1", "--readers", "1", "--duration", "0.5",
                     "--concurrency", "16"], '"phase": "end"', marks=pytest.mark.redis),
    ],
)  # fmt: skip
def test_benchmark_runs(script: str, args: list[str], expect: str, redis_binary: str) -> None:
    """The benchmark exits 0 and prints its report."""
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(BENCH / script), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert expect in result.stdout


def test_vendored_friendsqa_is_the_published_data() -> None:
    """The FriendsQA files are the repository's bytes, and the set built from them is whole:
    every question has a scope and at least one judged turn, and every judged turn is a
    memory in that scope."""
    sys.path.insert(0, str(BENCH))
    import _friendsqa

    expected = {
        "dev": "3a85d3fcb175589ffd050fb4bf431da77a6e12589c8ec03f1d54060ce33ec703",
        "tst": "a98f24d4b04ac9f8d9468088febf304bd90eada134537277c1a425e31c0372bc",
    }
    for split, digest in expected.items():
        raw = gzip.decompress((_friendsqa.DATA / f"friendsqa_{split}.json.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest, split
    for scope_by, n_scopes in ((_friendsqa.EPISODE, 17), (_friendsqa.SEASON, 4)):
        docs, queries, qrels, scopes = _friendsqa.build(scope_by)
        keys = {key for key, _ in docs}
        assert (len(docs), len(keys), len(queries)) == (5183, 5183, 2383)
        assert len(set(scopes.values())) == n_scopes
        for qid, _ in queries:
            assert qrels[qid]
            assert all(k in keys and k.startswith(scopes[qid] + ":") for k in qrels[qid])
    assert ("s01:e23:c06:0", "Ross Geller: Breathe.") in docs
    typed = _friendsqa.detokenise("I do n't know , I 'm gon na go .")
    assert typed == "I don't know, I'm gonna go."
