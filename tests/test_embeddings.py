"""The embedder seam: every kind of ``embed=`` becomes one checked, cached, batching embedder."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tta_dev_primitives.embeddings import Embedder, as_embedder, decode_vector, encode_vector
from tta_dev_primitives.exceptions import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    TTAError,
)


def vector_of(text: str, dims: int = 4) -> list[float]:
    """A deterministic, non-zero, text-dependent vector."""
    padded = (text + "abc") * dims
    return [float(len(text) + 1), *(float(ord(c) % 7) for c in padded[: dims - 1])]


class Counting:
    """A sync batch function that records every call it gets."""

    def __init__(self, dims: int = 4) -> None:
        self.dims = dims
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [vector_of(t, self.dims) for t in texts]

    @property
    def texts_sent(self) -> list[str]:
        return [t for call in self.calls for t in call]


def unit_norms(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.linalg.norm(rows.astype(np.float64), axis=1)


# --- sources -----------------------------------------------------------------------------------


async def test_a_sync_function_runs_off_the_loop_and_gives_unit_float32_rows() -> None:
    threads: list[bool] = []

    def embed(texts: list[str]) -> list[list[float]]:
        import threading

        threads.append(threading.current_thread() is threading.main_thread())
        return [vector_of(t) for t in texts]

    embedder = as_embedder(embed)
    rows = await embedder.embed(["a", "bb"])
    assert rows.dtype == np.float32
    assert rows.shape == (2, 4)
    assert threads == [False]  # not on the event loop's thread
    np.testing.assert_allclose(unit_norms(rows), 1.0, rtol=1e-6)
    expected = np.array(vector_of("bb")) / np.linalg.norm(vector_of("bb"))
    np.testing.assert_allclose(rows[1], expected, rtol=1e-6)


async def test_an_async_function_and_a_numpy_return_are_accepted() -> None:
    async def embed(texts: list[str]) -> np.ndarray[Any, Any]:
        await asyncio.sleep(0)
        return np.array([vector_of(t) for t in texts], dtype=np.float64)

    embedder = as_embedder(embed, dims=4)
    rows = await embedder.embed(["x", "y", "z"])
    assert rows.shape == (3, 4)
    assert embedder.dims == 4


async def test_a_langchain_embeddings_uses_documents_for_memories_and_query_for_search() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    model = DeterministicFakeEmbedding(size=16)
    embedder = as_embedder(model)
    docs = await embedder.embed_documents(["hello", "world"])
    query = await embedder.embed_query("hello")
    assert docs.shape == (2, 16)
    assert query.shape == (16,)
    raw = np.array(model.embed_documents(["hello"])[0])
    np.testing.assert_allclose(docs[0], raw / np.linalg.norm(raw), rtol=1e-5)
    np.testing.assert_allclose(query, docs[0], rtol=1e-5)  # this fake is symmetric
    assert embedder.dims == 16
    assert "DeterministicFakeEmbedding" in embedder.model_id


async def test_an_asymmetric_langchain_model_keeps_its_two_sides_apart() -> None:
    class Asymmetric:
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.seen += [("doc", t) for t in texts]
            return [[1.0, 0.0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            self.seen.append(("query", text))
            return [0.0, 1.0]

        async def aembed_query(self, text: str) -> list[float]:
            self.seen.append(("aquery", text))
            return [0.0, 1.0]

    model = Asymmetric()
    embedder = as_embedder(model)
    doc = await embedder.embed(["same text"])
    query = await embedder.embed_query("same text")
    np.testing.assert_array_equal(doc[0], [1.0, 0.0])
    np.testing.assert_array_equal(query, [0.0, 1.0])
    # documents had no async method (sync in a thread); the async query method was preferred
    assert model.seen == [("doc", "same text"), ("aquery", "same text")]


async def test_a_sentence_transformers_shaped_model_is_encoded_normalised_in_a_thread() -> None:
    class FakeSentenceTransformer:
        def __init__(self) -> None:
            self.kwargs: list[dict[str, Any]] = []

        def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray[Any, Any]:
            self.kwargs.append(kwargs)
            return np.array([vector_of(s, 8) for s in sentences], dtype=np.float32)

    model = FakeSentenceTransformer()
    embedder = as_embedder(model)
    rows = await embedder.embed(["one", "two"])
    assert rows.shape == (2, 8)
    assert model.kwargs == [{"normalize_embeddings": True}]
    assert embedder.model_id.startswith("sentence-transformers:")


async def test_a_model_with_encode_query_and_encode_document_uses_both() -> None:
    class Prompted:
        def encode(self, sentences: list[str], **kwargs: Any) -> list[list[float]]:
            raise AssertionError("encode_document/encode_query exist and must be used")

        def encode_document(self, sentences: list[str], **kwargs: Any) -> list[list[float]]:
            return [[1.0, 0.0, 0.0] for _ in sentences]

        def encode_query(self, sentences: list[str], **kwargs: Any) -> list[list[float]]:
            return [[0.0, 0.0, 1.0] for _ in sentences]

    embedder = as_embedder(Prompted())
    np.testing.assert_array_equal((await embedder.embed(["t"]))[0], [1, 0, 0])
    np.testing.assert_array_equal(await embedder.embed_query("t"), [0, 0, 1])


def test_a_provider_string_without_langchain_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain", None)  # as if not installed
    with pytest.raises(EmbeddingError, match=r"embedding-providers.*langchain-openai") as caught:
        as_embedder("openai:text-embedding-3-small")
    assert isinstance(caught.value, TTAError)
    assert isinstance(caught.value, RuntimeError)


@pytest.mark.parametrize("spec", ["openai", ":model", "openai:", " : "])
def test_a_malformed_provider_string_is_a_value_error(spec: str) -> None:
    with pytest.raises(InvalidArgumentError, match="provider:model"):
        as_embedder(spec)


async def test_a_provider_string_is_resolved_lazily_by_init_embeddings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is loaded until the first embed; a failed load is retried on the next call."""
    import types

    from langchain_core.embeddings import DeterministicFakeEmbedding

    loads: list[str] = []
    fail = [True]

    def init_embeddings(spec: str) -> DeterministicFakeEmbedding:
        loads.append(spec)
        if fail[0]:
            raise ImportError("no module named langchain_fake")
        return DeterministicFakeEmbedding(size=6)

    package = types.ModuleType("langchain")
    module = types.ModuleType("langchain.embeddings")
    module.init_embeddings = init_embeddings  # type: ignore[attr-defined]
    package.__path__ = []  # a package, so find_spec finds it
    package.__spec__ = __import__("importlib.machinery").machinery.ModuleSpec("langchain", None)
    monkeypatch.setitem(sys.modules, "langchain", package)
    monkeypatch.setitem(sys.modules, "langchain.embeddings", module)

    embedder = as_embedder("fake:model-1")
    assert loads == []  # lazy
    with pytest.raises(EmbeddingError, match="fake:model-1") as caught:
        await embedder.embed(["a"])
    assert isinstance(caught.value.__cause__, ImportError)
    fail[0] = False
    rows = await embedder.embed(["a", "b"])
    assert rows.shape == (2, 6)
    await embedder.embed_query("q")
    assert loads == ["fake:model-1", "fake:model-1"]  # loaded once it worked


def test_an_existing_embedder_is_returned_as_is() -> None:
    embedder = as_embedder(Counting())
    assert as_embedder(embedder) is embedder
    assert as_embedder(embedder, dims=4) is embedder
    assert embedder.dims == 4
    with pytest.raises(InvalidArgumentError):
        as_embedder(embedder, dims=5)


@pytest.mark.parametrize("bad", [5, None, object(), [1, 2]])
def test_something_that_cannot_embed_is_a_type_error(bad: Any) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        as_embedder(bad)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dims": 0}, InvalidArgumentError),
        ({"dims": 1.5}, InvalidArgumentTypeError),
        ({"dims": True}, InvalidArgumentTypeError),
        ({"batch_size": 0}, InvalidArgumentError),
        ({"max_concurrency": 0}, InvalidArgumentError),
        ({"cache_size": -1}, InvalidArgumentError),
    ],
)
def test_bad_options_are_tta_errors(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        as_embedder(Counting(), **kwargs)
    assert isinstance(caught.value, TTAError)


@pytest.mark.parametrize("texts", ["a string", [b"bytes"], ["ok", 3]])
async def test_texts_must_be_a_list_of_str(texts: Any) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        await as_embedder(Counting()).embed(texts)


async def test_no_texts_is_an_empty_array_and_no_model_call() -> None:
    function = Counting()
    embedder = as_embedder(function, dims=4)
    rows = await embedder.embed([])
    assert rows.shape == (0, 4)
    assert function.calls == []


def test_importing_the_library_loads_no_optional_package() -> None:
    code = (
        "import sys, tta_dev_primitives, tta_dev_primitives.embeddings as e\n"
        "e.as_embedder(lambda t: t)\n"
        "bad = [m for m in ('langchain', 'langchain_core', 'sentence_transformers', 'torch')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_the_top_package_does_not_import_numpy() -> None:
    code = "import sys, tta_dev_primitives\nassert 'numpy' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- bad vectors -------------------------------------------------------------------------------


def returning(value: Any) -> Any:
    def embed(texts: list[str]) -> Any:
        return value(texts) if callable(value) else value

    return embed


BAD_RESULTS = [
    ("wrong dims", lambda ts: [[1.0, 2.0, 3.0] for _ in ts], "3 dims, expected 4"),
    ("too few vectors", lambda ts: [[1.0, 2.0, 3.0, 4.0]], "1 vectors for 2 texts"),
    ("too many", lambda ts: [[1.0] * 4] * 3, "3 vectors for 2 texts"),
    ("NaN", lambda ts: [[1.0, math.nan, 0, 0], [1.0, 0, 0, 0]], "NaN"),
    ("inf", lambda ts: [[1.0, 0, 0, 0], [math.inf, 0, 0, 0]], "NaN or infinity in vector 1"),
    ("zero vector", lambda ts: [[0.0] * 4, [1.0] * 4], "zero vector"),
    ("strings", lambda ts: [["1", "2", "3", "4"]] * 2, "numbers"),
    ("None", lambda ts: None, "numbers"),
    ("ragged", lambda ts: [[1.0, 2.0], [1.0, 2.0, 3.0]], "numpy cannot read"),
    ("flat", lambda ts: [1.0, 2.0], "2-D"),
    ("bools", lambda ts: [[True] * 4] * 2, "numbers"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "result", "message"), BAD_RESULTS, ids=[b[0] for b in BAD_RESULTS]
)
async def test_unusable_vectors_are_embedding_errors_and_nothing_is_cached(
    what: str, result: Any, message: str
) -> None:
    """A bad result raises EmbeddingError and caches nothing of it, only the good rows beside."""
    embedder = as_embedder(returning(result), dims=4)
    with pytest.raises(EmbeddingError, match=message) as caught:
        await embedder.embed(["aa", "bb"])
    assert isinstance(caught.value, RuntimeError)
    one_bad_row = what in {"NaN", "inf", "zero vector"}  # the other row is good, and kept
    assert embedder.stats()["cached"] == (1 if one_bad_row else 0)


async def test_huge_and_tiny_finite_vectors_keep_their_direction() -> None:
    embedder = as_embedder(lambda ts: [[1e300, 1e300, 0.0], [1e-300, 0.0, 1e-300]])
    rows = await embedder.embed(["huge", "tiny"])
    half = 1 / math.sqrt(2)
    np.testing.assert_allclose(rows, [[half, half, 0.0], [half, 0.0, half]], rtol=1e-6)


async def test_learned_dims_are_fixed_after_the_first_result() -> None:
    sizes = iter([3, 5])
    embedder = as_embedder(lambda ts: [[1.0] * next(sizes) for _ in ts])
    assert embedder.dims is None
    await embedder.embed(["a"])
    assert embedder.dims == 3
    with pytest.raises(EmbeddingError, match="5 dims, expected 3"):
        await embedder.embed(["b"])


async def test_one_odd_sized_row_first_in_the_first_batch_fails_only_its_own_text() -> None:
    """Dims learned from the first batch go by the size most of its rows share: an odd row
    first failed the four right ones of its batch, and every later text (review R25)."""
    embedder = as_embedder(lambda ts: [[1.0] * (3 if t == "odd" else 2) for t in ts])
    texts = ["odd", "a", "b", "c", "d"]
    results = await asyncio.gather(
        *(embedder.embed([text]) for text in texts), return_exceptions=True
    )
    assert embedder.stats()["model_calls"] == 1  # one batch
    assert isinstance(results[0], EmbeddingError)
    assert not any(isinstance(result, BaseException) for result in results[1:]), results
    assert embedder.dims == 2
    await embedder.embed(["later"])


# --- failures ----------------------------------------------------------------------------------


async def test_an_error_from_the_model_is_chained_every_waiter_sees_it_and_a_retry_works() -> None:
    attempts: list[list[str]] = []
    gate = asyncio.Event()

    async def flaky(texts: list[str]) -> list[list[float]]:
        attempts.append(list(texts))
        await gate.wait()
        if len(attempts) == 1:
            raise ConnectionError("model server down")
        return [vector_of(t) for t in texts]

    embedder = as_embedder(flaky)
    first = asyncio.ensure_future(embedder.embed(["t"]))
    second = asyncio.ensure_future(embedder.embed(["t"]))  # joins the same in-flight call
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        assert isinstance(result, EmbeddingError)
        assert isinstance(result.__cause__, ConnectionError)
        assert "model server down" in str(result)
    assert len(attempts) == 1
    assert embedder.stats()["cached"] == 0
    rows = await embedder.embed(["t"])  # nothing cached from the failure: this retries
    assert rows.shape == (1, 4)
    assert len(attempts) == 2


async def test_a_failing_sync_function_is_chained_too() -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        raise KeyError("boom")

    with pytest.raises(EmbeddingError) as caught:
        await as_embedder(broken).embed(["x"])
    assert isinstance(caught.value.__cause__, KeyError)


async def test_a_cancelled_caller_does_not_cancel_the_shared_call() -> None:
    gate = asyncio.Event()
    function_calls: list[list[str]] = []

    async def slow(texts: list[str]) -> list[list[float]]:
        function_calls.append(list(texts))
        await gate.wait()
        return [vector_of(t) for t in texts]

    embedder = as_embedder(slow)
    leader = asyncio.ensure_future(embedder.embed(["t"]))
    follower = asyncio.ensure_future(embedder.embed(["t"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    leader.cancel()
    gate.set()
    rows = await follower
    assert rows.shape == (1, 4)
    assert leader.cancelled()
    assert function_calls == [["t"]]


# --- cache, dedupe, single-flight, batching ----------------------------------------------------


async def test_each_text_is_embedded_once_then_served_from_the_cache() -> None:
    function = Counting()
    embedder = as_embedder(function)
    first = await embedder.embed(["a", "b"])
    second = await embedder.embed(["b", "a", "c"])
    assert function.texts_sent == ["a", "b", "c"]
    np.testing.assert_array_equal(second[:2], first[::-1])
    assert embedder.hits == 2
    assert embedder.misses == 3
    assert embedder.stats()["cache_hits"] == 2
    assert embedder.stats()["model_calls"] == 2


async def test_returned_arrays_are_the_callers_own() -> None:
    embedder = as_embedder(Counting())
    rows = await embedder.embed(["a"])
    rows[0, 0] = 99.0  # writable, and does not reach the cache
    again = await embedder.embed(["a"])
    assert again[0, 0] != 99.0


async def test_repeats_within_a_call_are_embedded_once() -> None:
    function = Counting()
    rows = await as_embedder(function).embed(["a", "b", "a", "a"])
    assert function.texts_sent == ["a", "b"]
    np.testing.assert_array_equal(rows[0], rows[2])
    np.testing.assert_array_equal(rows[0], rows[3])


async def test_concurrent_requests_for_one_text_share_one_call() -> None:
    function = Counting()
    embedder = as_embedder(function)
    results = await asyncio.gather(*(embedder.embed(["same"]) for _ in range(10)))
    assert function.calls == [["same"]]
    for rows in results:
        np.testing.assert_array_equal(rows, results[0])
    assert embedder.misses == 1
    assert embedder.hits == 9


async def test_single_texts_embedded_together_in_one_tick_become_one_model_call() -> None:
    function = Counting()
    embedder = as_embedder(function)
    texts = [f"text {i}" for i in range(20)]
    results = await asyncio.gather(*(embedder.embed([t]) for t in texts))
    assert len(function.calls) == 1
    assert sorted(function.calls[0]) == sorted(texts)
    for text, rows in zip(texts, results, strict=True):
        np.testing.assert_allclose(rows[0], (await embedder.embed([text]))[0])


async def test_large_inputs_go_in_batches_of_batch_size_with_bounded_concurrency() -> None:
    running = 0
    peak = 0
    sizes: list[int] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        sizes.append(len(texts))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1
        return [vector_of(t) for t in texts]

    embedder = as_embedder(embed, batch_size=10, max_concurrency=2)
    texts = [f"t{i}" for i in range(45)]
    rows = await embedder.embed(texts)
    assert sorted(sizes) == [5, 10, 10, 10, 10]
    assert peak <= 2
    assert rows.shape == (45, 4)
    for i in (0, 17, 44):  # rows come back in the order of the texts
        expected = np.array(vector_of(texts[i]))
        np.testing.assert_allclose(rows[i], expected / np.linalg.norm(expected), rtol=1e-6)


async def test_the_cache_is_lru_bounded() -> None:
    function = Counting()
    embedder = as_embedder(function, cache_size=2)
    await embedder.embed(["a"])
    await embedder.embed(["b"])
    await embedder.embed(["a"])  # a is now the most recent
    await embedder.embed(["c"])  # evicts b
    assert embedder.stats()["cached"] == 2
    await embedder.embed(["a"])
    await embedder.embed(["b"])
    assert function.texts_sent == ["a", "b", "c", "b"]


async def test_cache_size_zero_turns_the_cache_off_but_still_dedupes() -> None:
    function = Counting()
    embedder = as_embedder(function, cache_size=0)
    await embedder.embed(["a", "a"])
    await embedder.embed(["a"])
    assert function.texts_sent == ["a", "a"]


async def test_an_embedder_works_across_event_loops() -> None:
    """Per-loop state: a sync caller's own loop (run in a thread) works beside this one."""
    function = Counting()
    embedder = as_embedder(function)
    await embedder.embed(["here"])
    rows = await asyncio.to_thread(lambda: asyncio.run(embedder.embed(["here", "there"])))
    assert rows.shape == (2, 4)
    assert function.texts_sent == ["here", "there"]


# --- laws --------------------------------------------------------------------------------------

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)
nonzero_vectors = st.lists(finite_floats, min_size=1, max_size=16).filter(
    lambda v: any(abs(x) > 1e-3 for x in v)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(nonzero_vectors, min_size=1, max_size=6).flatmap(
    lambda vs: st.lists(
        st.lists(finite_floats, min_size=len(vs[0]), max_size=len(vs[0])).filter(
            lambda v: any(abs(x) > 1e-3 for x in v)
        ),
        min_size=1, max_size=6,
    )
))  # fmt: skip
def test_every_row_has_unit_norm_and_keeps_its_direction(vectors: list[list[float]]) -> None:
    texts = [f"t{i}" for i in range(len(vectors))]
    embedder = as_embedder(lambda ts: [vectors[int(t[1:])] for t in ts])
    rows = asyncio.run(embedder.embed(texts))
    np.testing.assert_allclose(unit_norms(rows), 1.0, rtol=1e-5)
    raw = np.array(vectors, dtype=np.float64)
    cosine = (raw * rows).sum(axis=1) / np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(cosine, 1.0, rtol=1e-5)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1))
def test_encode_then_decode_gives_the_float32_vector_back(vector: list[float]) -> None:
    data = encode_vector(vector)
    assert len(data) == 4 * len(vector)
    decoded = decode_vector(data, len(vector))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, np.array(vector, dtype=np.float32))
    assert encode_vector(decoded) == data


def test_vector_bytes_are_float32_little_endian() -> None:
    assert encode_vector([1.0, -2.0]) == b"\x00\x00\x80\x3f\x00\x00\x00\xc0"
    big_endian = np.array([1.5], dtype=">f4")
    assert encode_vector(big_endian) == encode_vector([1.5])


@pytest.mark.parametrize(
    ("data", "dims", "error"),
    [
        (b"\x00" * 7, 2, InvalidArgumentError),
        (b"\x00" * 12, 2, InvalidArgumentError),
        (b"", 1, InvalidArgumentError),
        (np.array([math.nan], dtype="<f4").tobytes(), 1, InvalidArgumentError),
        ("not bytes", 2, InvalidArgumentTypeError),
        (b"\x00" * 8, 0, InvalidArgumentError),
    ],
)
def test_decode_refuses_bytes_that_are_not_a_vector(
    data: Any, dims: int, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        decode_vector(data, dims)
    assert isinstance(caught.value, TTAError)


@pytest.mark.parametrize(
    ("vector", "error"),
    [
        ([], InvalidArgumentError),
        ([[1.0]], InvalidArgumentError),
        ([math.nan], InvalidArgumentError),
        ([1e300], InvalidArgumentError),
        (["a"], InvalidArgumentTypeError),
    ],
)
def test_encode_refuses_what_is_not_one_finite_vector(
    vector: Sequence[Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        encode_vector(vector)


def test_embedder_is_the_public_class() -> None:
    assert isinstance(as_embedder(Counting()), Embedder)
    assert Embedder(Counting(), dims=4).dims == 4
