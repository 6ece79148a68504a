"""The vectors bench_vectors.py searches: MiniLM embeddings of chitchat turns, cached on disk.

``corpus_vectors(n)`` embeds the first ``n`` turns of ``_corpus.load_turns`` with the offline
MiniLM (``_embed.Embedder``) in chunks of ``CHUNK`` texts, each cached on its own, so an
interrupted run resumes where it stopped; ``question_vectors`` embeds ``_corpus.questions``.
Without sentence-transformers (or the model) both return ``None`` and the caller falls back to
random clustered vectors, saying so.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any

import numpy as np

from _corpus import load_turns, questions

CHUNK = 5_000


def _embedder() -> Any:
    """The MiniLM embedder, or None without sentence-transformers or the model. The package is
    looked for, not imported: importing it (torch) takes seconds, and the embedder imports it
    itself only for texts missing from the cache."""
    try:
        if importlib.util.find_spec("sentence_transformers") is None:
            return None
        from _embed import Embedder, model_path

        model_path()
    except ImportError:
        return None
    return Embedder()


def corpus_vectors(n: int, progress: bool = False) -> tuple[Any, list[str]] | None:
    """``(n x 384 float32 unit rows, texts)`` of the first ``n`` turns, or None without a model."""
    embedder = _embedder()
    if embedder is None:
        return None
    texts = load_turns(n).texts
    parts, start = [], time.perf_counter()
    for i in range(0, n, CHUNK):
        parts.append(embedder.embed(texts[i : i + CHUNK]))
        if progress:
            done = i + len(parts[-1])
            rate = embedder.encoded / max(embedder.encode_s, 1e-9)
            print(f"  embedded {done:,}/{n:,} ({time.perf_counter() - start:.0f} s, "
                  f"{rate:.0f} texts/s uncached)", file=sys.stderr, flush=True)  # fmt: skip
    return np.concatenate(parts), texts


def question_vectors(n_turns: int, count: int) -> tuple[Any, list[str]] | None:
    """``(count x 384, questions)``: natural-language questions about the first turns."""
    embedder = _embedder()
    if embedder is None:
        return None
    asked = questions(load_turns(min(n_turns, 100_000)), count)
    return embedder.embed(asked), asked


if __name__ == "__main__":  # warm the cache: python benchmarks/_vectors_data.py 100000
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    found = corpus_vectors(size, progress=True)
    print("no model" if found is None else f"{found[0].shape} cached")
