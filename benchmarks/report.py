"""Run the benchmarks and write docs/benchmarks.md with tables and PNG plots.

Run: ``.venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/report.py``
(``--quick`` for a smoke run). Figures are ratios from one run on one machine: the machine is
stated in the report, and the absolute numbers will differ on yours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMAGES = DOCS / "img"
sys.path.insert(0, str(ROOT / "tests"))


REUSE = False  # --reuse: read a benchmark's saved JSON instead of running it again


def run_json(script: str, *args: str, name: str | None = None) -> dict[str, Any]:
    out = ROOT / "benchmarks" / "results" / ((name or Path(script).stem) + ".json")
    out.parent.mkdir(exist_ok=True)
    if REUSE and out.exists():
        return json.loads(out.read_text())  # type: ignore[no-any-return]
    subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "benchmarks" / script), *args,
                    "--json", str(out)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.read_text())  # type: ignore[no-any-return]


async def outage_timeline(seconds: float) -> list[tuple[float, float, str]]:
    """(time, latency ms, backend) per add+get while Redis is killed and restarted."""
    from redis_server import RedisServer, find_redis_server
    from tta_dev_primitives import MemoryPrimitive
    from tta_dev_primitives.testing import capture_spans

    binary = find_redis_server()
    assert binary, "redis-server is needed for the outage timeline"
    server = RedisServer(binary, appendonly=True).start()
    memory = MemoryPrimitive(server.url, namespace="report", redis_timeout=0.3,
                             recovery_interval=0.2, max_recovery_interval=0.5)  # fmt: skip
    points: list[tuple[float, float, str]] = []
    start = time.perf_counter()
    killed = restarted = False
    i = 0
    with capture_spans() as spans:
        while (now := time.perf_counter() - start) < seconds:
            if not killed and now > seconds * 0.3:
                server.kill()
                killed = True
            if killed and not restarted and now > seconds * 0.6:
                server.start()
                restarted = True
            spans.clear()
            t0 = time.perf_counter()
            await memory.add(f"k{i}", {"content": f"write {i}"})
            await memory.get(f"k{i}")
            latency = (time.perf_counter() - t0) * 1e3
            fallback = any(s.attributes.get("memory.fallback") for s in spans)
            points.append((now, latency, "in-process (fallback)" if fallback else "redis"))
            i += 1
            await asyncio.sleep(0.005)
    await memory.aclose()
    server.stop()
    return points


def plot_search(memory: dict[str, Any]) -> str:
    sizes = [r["memories"] for r in memory["memory"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for query in ("rare-term", "two-word", "common-term"):
        index = [
            next(
                x["index_p50_ms"]
                for x in r["search"]
                if x["query"] == query and x["scope"] == "global"
            )
            for r in memory["memory"]
        ]
        ax.plot(sizes, index, marker="o", label=f"index: {query}")
    scan = [next(x["scan_p50_ms"] for x in r["search"] if x["query"] == "rare-term"
                 and x["scope"] == "global") for r in memory["memory"]]  # fmt: skip
    ax.plot(sizes, scan, marker="s", linestyle="--", color="black", label="linear scan")
    ax.set(xscale="log", yscale="log", xlabel="memories stored", ylabel="search p50 (ms)",
           title="In-process search: inverted index vs linear scan")  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    return save(fig, "search.png")


def plot_steps(comp: dict[str, Any]) -> str:
    labels = ["bare await", "tta, no SDK", "tta, SDK", "LangChain LCEL"]
    values = [comp["bare_step_us"], comp["ours_step_us"], comp["ours_sdk_step_us"],
              comp["lcel_step_us"]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(labels, values, color=["grey", "tab:green", "tab:olive", "tab:red"])
    ax.set(xscale="log", xlabel="microseconds per step (log)",
           title="Cost of one composed step (10-step chain)")  # fmt: skip
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center")
    return save(fig, "steps.png")


def plot_redis(redis: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    rows = redis["calls"]
    names = [f"{op}, {_callers(r['concurrency'])}" for r in rows for op in ("get", "add")]
    ours = [r[k] for r in rows for k in ("get_us", "add_us")]
    raw = [r[k] for r in rows for k in ("raw_get_us", "raw_set_us")]
    y = range(len(names))
    ax.barh([v + 0.2 for v in y], raw, height=0.4, label="raw redis.asyncio + json", color="grey")
    ax.barh([v - 0.2 for v in y], ours, height=0.4, label="MemoryPrimitive", color="tab:blue")
    ax.set_yticks(list(y), names)
    ax.set(xlabel="microseconds per call", title="Redis: per-call cost against raw GET/SET")
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, "redis.png")


def _callers(n: int) -> str:
    return "1 caller" if n == 1 else f"{n} concurrent"


def plot_outage(points: list[tuple[float, float, str]]) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for backend, color in (("redis", "tab:blue"), ("in-process (fallback)", "tab:orange")):
        xs = [t for t, _, b in points if b == backend]
        ys = [lat for _, lat, b in points if b == backend]
        ax.scatter(xs, ys, s=6, color=color, label=backend)
    ax.set(yscale="log", xlabel="seconds", ylabel="add+get latency (ms)",
           title="Redis killed at 30% and restarted at 60% of the run")  # fmt: skip
    ax.legend()
    return save(fig, "outage.png")


def save(fig: Any, name: str) -> str:
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(IMAGES / name, dpi=110)
    plt.close(fig)
    return f"img/{name}"


def write(memory: dict[str, Any], comp: dict[str, Any], redis: dict[str, Any],
          graph: dict[str, Any], points: list[tuple[float, float, str]],
          extra: list[str]) -> None:  # fmt: skip
    machine = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")  # fmt: skip
    fallback = [lat for _, lat, b in points if b != "redis"]
    lines = [
        "# Benchmarks",
        "",
        f"One run on {machine}, written by `python benchmarks/report.py`. Absolute numbers "
        "depend on the machine; the ratios are what carry over.",
        "",
        f"![search]({plot_search(memory)})",
        "",
        "Synthetic one- and two-word queries against a linear scan of the same memories; every "
        "posting of a query's words is scored in one numpy pass, so a common word costs its "
        "postings, never a rescan of the documents. What users send is questions: below.",
        "",
        "| memories | add/s | get/s | bytes per memory | rare-word p50 | x scan |",
        "|---|---|---|---|---|---|",
    ]
    for r in memory["memory"]:
        rare = next(x for x in r["search"] if x["query"] == "rare-term" and x["scope"] == "global")
        lines.append(f"| {r['memories']:,} | {r['adds_per_s']:,.0f} | {r['gets_per_s']:,.0f} | "
                     f"{r['bytes_per_memory']:,.0f} | {rare['index_p50_ms']:.3f} ms | "
                     f"{rare['speedup']:,.0f}x |")  # fmt: skip
    lines += ["", f"![steps]({plot_steps(comp)})", "",
              f"LCEL is {comp['lcel_step_us'] / comp['ours_step_us']:,.0f}x the cost of a step "
              f"with no SDK; cold import {comp['import_ours_ms']:.0f} ms against LCEL's "
              f"{comp['import_lcel_ms']:.0f} ms.", "",
              *langgraph_table(graph),
              f"![redis]({plot_redis(redis)})", "",
              f"![outage]({plot_outage(points)})", "",
              f"During the outage {len(fallback)} calls were served in-process (slowest "
              f"{max(fallback, default=0):.0f} ms); none failed. Fallback calls are faster "
              "than Redis calls because they never leave the process; the first one after the "
              "kill, and the one that replays the journal, are the slow points.", "",
              *extra]  # fmt: skip
    (DOCS / "benchmarks.md").write_text("\n".join(lines) + "\n")


def relevance_table(rel: dict[str, Any]) -> list[str]:
    lines = ["## Relevance", "",
             f"Cranfield 1400 ({rel['documents']:,} abstracts, {rel['judged_queries']} questions "
             "with human judgments), every engine in the same run "
             "(`python benchmarks/bench_relevance.py --redis-url URL`). *semantic* and *hybrid* "
             "embed with the offline all-MiniLM-L6-v2 (`MemoryPrimitive(embed=...)`, "
             "`benchmarks/_embed.py`); their ms include looking up the question's cached "
             "embedding, not running the model. *(redis)* rows are the same variant on Redis.",
             "", "| engine | nDCG@10 | recall@100 | ms p50 |", "|---|---|---|---|"]  # fmt: skip
    for e in rel["engines"]:
        lines.append(f"| {e['engine']} | {e['ndcg10']:.3f} | {e['recall100']:.3f} | "
                     f"{e['p50_ms']:.2f} |")  # fmt: skip
    lines.append("")
    for r in rel.get("redis", []):
        same = ("identical to in-process" if not r["queries_differ"] else
                f"different in {r['queries_differ']} of {rel['queries']} queries")  # fmt: skip
        lines.append(f"- {r['variant']} on Redis: top-100 rankings {same}.")
    for note in rel.get("notes", []):
        lines.append(f"- note: {note}")
    return [*lines, ""]


def vectors_table(runs: list[dict[str, Any]]) -> list[str]:
    """Semantic search at 100k and 1M vectors (``bench_vectors.py``), ours and the peers."""
    lines = ["## Vectors", "",
             "Semantic search, top 10 by cosine, 384-dimensional MiniLM vectors; recall@10 "
             "against exact search; every engine in the same run on the same vectors and "
             "questions (`python benchmarks/bench_vectors.py [--n 1000000 ...]`). Details, and "
             "the index's event-loop pauses before and after it stopped building its graph in "
             "one go: `benchmarks/results/vectors.md`.", ""]  # fmt: skip
    for v in runs:
        lines += [f"**{v['n']:,} vectors**: {v['source']}; {v['questions']} natural-language "
                  "questions.", "",
                  "| engine | ms p50 | ms p99 | recall@10 | build/load s | server us/search | "
                  "bytes/vector |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        ix = v["index"]
        lines.append(f"| ours, SearchIndex | {ix['p50_ms']:.2f} | {ix['p99_ms']:.2f} | "
                     f"{ix['recall10']:.3f} | {ix['fill_s']:.1f} | - | "
                     f"{ix['rss_bytes_per_vector']:,.0f} (RSS) |")  # fmt: skip
        if "memory" in v:
            m = v["memory"]
            lines.append(
                f"| ours, MemoryPrimitive semantic | {m['p50_ms']:.2f} | "
                f"{m['p99_ms']:.2f} | {m['recall10']:.3f} | {m['fill_s']:.1f} | - | - |"
            )
        if "redis" in v:
            r = v["redis"]
            lines.append(f"| ours on Redis | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{r['recall10']:.3f} | {r['replica_load_s']:.1f} (replica) | "
                         f"{r['server_us_per_search']:.0f} | "
                         f"{r['redis_bytes_per_vector']:,.0f} (Redis) |")  # fmt: skip
        if "redisearch" in v:
            r = v["redisearch"]
            for key, run in r.items():
                if not isinstance(run, dict) or "p50_ms" not in run:
                    continue
                ef = "10 (default)" if key == "default" else key.removeprefix("ef")
                lines.append(f"| RediSearch HNSW, EF_RUNTIME {ef} | {run['p50_ms']:.2f} | "
                             f"{run['p99_ms']:.2f} | {run['recall10']:.3f} | "
                             f"{r['build_s']:.1f} (index) | {run['server_us_per_search']:.0f} | "
                             f"{r['redis_bytes_per_vector']:,.0f} (Redis) |")  # fmt: skip
        if "langgraph" in v:
            g = v["langgraph"]
            lines.append(f"| LangGraph InMemoryStore ({g['questions']} questions) | "
                         f"{g['p50_ms']:.1f} | {g['p99_ms']:.1f} | {g['recall10']:.3f} | "
                         f"{g['fill_s']:.1f} | - | - |")  # fmt: skip
        lines.append("")
        lines.append(f"Longest `SearchIndex.add` {ix['longest_add_ms']:.0f} ms; longest search "
                     f"while filling {ix['longest_search_while_filling_ms']:.0f} ms.")  # fmt: skip
        if "redis" in v:
            r = v["redis"]
            fallbacks = r["searches_degraded"] + r["searches_not_on_redis"]
            lines[-1] += (f" On Redis: longest server call {r['longest_server_call_ms']:.2f} ms, "
                          f"fallbacks {fallbacks}, longest event-loop stall while the replica "
                          f"loaded {r['replica_load_longest_stall_ms']:.0f} ms.")  # fmt: skip
        lines.append("")
    return lines


def replace_section(text: str, title: str, lines: list[str]) -> str:
    """``text`` with its ``## title`` section (up to the next ``## ``) replaced, or appended."""
    head = f"## {title}\n"
    start = text.find(head)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n"
    end = text.find("\n## ", start + len(head))
    rest = "" if end < 0 else text[end + 1 :]
    return text[:start] + "\n".join(lines).rstrip("\n") + "\n\n" + rest


def sections(names: list[str], quick: list[str]) -> None:
    """Rewrite only these sections of docs/benchmarks.md (relevance, questions, vectors)."""
    from redis_server import RedisServer, find_redis_server

    path = DOCS / "benchmarks.md"
    text = path.read_text()
    if "relevance" in names:
        binary = find_redis_server()
        server = RedisServer(binary).start() if binary else None
        try:
            url = ["--redis-url", server.url] if server else []
            text = replace_section(
                text, "Relevance", relevance_table(run_json("bench_relevance.py", *quick, *url))
            )
        finally:
            if server:
                server.stop()
    if "questions" in names:
        text = replace_section(text, "Questions", questions_tables(*question_runs(quick)))
    if "vectors" in names:
        runs = [run_json("bench_vectors.py", *quick)]
        if not quick:
            runs.append(
                run_json(
                    "bench_vectors.py",
                    "--n",
                    "1000000",
                    "--queries",
                    "100",
                    "--only",
                    "redisearch",
                    name="bench_vectors_1m",
                )
            )
        text = replace_section(text, "Vectors", vectors_table(runs))
    path.write_text(text)


def question_runs(quick: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Questions at 100k, in-process and on Redis (the 1M run takes minutes more:
    `bench_memory.py --sizes ''`)."""
    qsize = "2000" if quick else "100000"
    questions = run_json("bench_memory.py", *quick, "--sizes", "", "--question-sizes", qsize)
    redis_q = run_json("bench_redis.py", *quick, "--questions-only", "--question-size", qsize)
    return questions, redis_q


def questions_tables(mem: dict[str, Any], red: dict[str, Any]) -> list[str]:
    lines = ["## Questions", ""]
    for run in mem.get("questions", []):
        lines += [f"In-process, {run['memories']:,} conversation turns ({run['corpus']}), "
                  f"{run['questions']} questions of 8-12 words, limit 10, ms "
                  "(`python benchmarks/bench_memory.py --sizes ''`):", "",
                  "| scope | engine | p50 | p95 | p99 |", "|---|---|---|---|---|"]  # fmt: skip
        for r in run["search"]:
            lines.append(f"| {r['scope']} | {r['engine']} | {r['p50_ms']:.2f} | "
                         f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} |")  # fmt: skip
        lines += ["", f"A {run['long_query']['bytes']:,}-byte query: "
                  f"{run['long_query']['ours_ms']:.1f} ms.", ""]  # fmt: skip
    q = red.get("questions")
    if q:
        o, rs = q["ours"], q.get("redisearch", {})
        lines += [f"On Redis, {q['memories']:,} turns, the same questions, redis_timeout "
                  f"{q['redis_timeout_s']} s (`python benchmarks/bench_redis.py "
                  "--questions-only`); the longest server call and a bystander GET every 5 ms "
                  "while four tasks search:", "",
                  "| engine | scope | p50 ms | p99 ms | longest server call ms | "
                  "bystander GET p99 ms |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, runs in (("ours", o), ("RediSearch", rs)):
            for scope in ("unscoped", "user"):
                if scope in runs:
                    r = runs[scope]
                    lines.append(f"| {name} | {scope} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                                 f"{r['longest_server_call_ms']:.2f} | "
                                 f"{r['bystander']['p99_ms']:.2f} |")  # fmt: skip
        lines += ["", f"Fallbacks during the run: {o['fallbacks']}. Server time per add "
                  f"{o['server_us_per_add']:.1f} us and {o['bytes_per_memory']:,.0f} bytes per "
                  "memory"
                  + (f" (RediSearch {rs['server_us_per_add']:.1f} us, "
                     f"{rs['bytes_per_memory']:,.0f} bytes)" if "server_us_per_add" in rs else "")
                  + f". The first search in a process loaded the replica in "
                  f"{o['first_search_s']:.2f} s.", ""]  # fmt: skip
    return lines


def langgraph_table(graph: dict[str, Any]) -> list[str]:
    run = graph["runs"][-1]
    lines = [f"Through LangGraph's store API, `MemoryPrimitiveStore` against LangGraph's "
             f"`InMemoryStore` with {run['items']:,} items (microseconds per call). "
             "`InMemoryStore` is a plain dict: it wins on single items; it has no word index, "
             "so *word* lists every item and scans it.", "",
             "| call | MemoryPrimitiveStore | InMemoryStore | InMemoryStore / ours |",
             "|---|---|---|---|"]  # fmt: skip
    for name, c in run["cases"].items():
        lines.append(f"| {name} | {c['ours_us']:,.1f} | {c['langgraph_us']:,.1f} | "
                     f"{c['langgraph_us'] / c['ours_us']:,.2f}x |")  # fmt: skip
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--sections", help="only rewrite these sections: relevance,questions,vectors"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use benchmarks/results/*.json where saved instead of rerunning",
    )
    args = parser.parse_args()
    global REUSE
    REUSE = args.reuse
    quick = ["--quick"] if args.quick else []
    if args.sections:
        sections(args.sections.split(","), quick)
        print(f"rewrote {args.sections} in {DOCS / 'benchmarks.md'}")
        return
    sizes = ["--sizes", "1000,4000"] if args.quick else ["--sizes", "1000,10000,100000"]
    memory = run_json("bench_memory.py", *quick, *sizes, "--question-sizes", "")
    comp = run_json("bench_composition.py", *quick)
    redis = run_json("bench_redis.py", *quick, "--question-size", "0")
    graph = run_json("bench_langgraph.py", *quick)
    points = asyncio.run(outage_timeline(3.0 if args.quick else 8.0))
    questions, redis_q = question_runs(quick)
    relevance = run_json("bench_relevance.py", *quick)
    vectors = run_json("bench_vectors.py", *quick)
    extra = [*relevance_table(relevance), *questions_tables(questions, redis_q),
             *vectors_table([vectors])]  # fmt: skip
    write(memory, comp, redis, graph, points, extra)
    print(f"wrote {DOCS / 'benchmarks.md'} and {IMAGES}")


if __name__ == "__main__":
    main()
