"""Embedder calls are bounded: a hung model times out, frees its slot, and never wedges the memory.

The hung embedders here really hang (an event that never fires, a thread that sleeps), and the
tests check what the next calls do, never how long anything took.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import eventually
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.embeddings import Embedder
from tta_dev_primitives.exceptions import EmbeddingError

DIMS = 4


def vector(text: str) -> list[float]:
    """A deterministic non-zero vector for ``text``."""
    return [float(len(text)), 1.0, float(text.count("a")), 2.0]


class AsyncHanger:
    """An async batch embedder that never answers for texts starting with "hang" while hanging."""

    def __init__(self) -> None:
        self.hanging = True
        self.started = 0
        self.cancelled = 0

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.started += 1
        if self.hanging and any(text.startswith("hang") for text in texts):
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return [vector(text) for text in texts]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event the sync hung embedders wait on; set at teardown so their threads end."""
    event = threading.Event()
    yield event
    event.set()


async def test_a_hung_model_call_times_out_and_the_same_text_embeds_again_later() -> None:
    """Four hung adds raise EmbeddingError naming embed_timeout; then adds work, that text too."""
    hanger = AsyncHanger()
    memory = MemoryPrimitive(embed=hanger, dims=DIMS, embed_timeout=0.3)
    adds = [memory.add(f"k{i}", {"content": "hang on"}, vector_text=f"hang {i}") for i in range(4)]
    results = await asyncio.gather(*adds, return_exceptions=True)
    assert all(isinstance(r, EmbeddingError) for r in results), results
    assert all("embed_timeout=0.3" in str(r) for r in results)
    assert hanger.cancelled >= 1  # the hung coroutine was cancelled, not left running
    assert await memory.size() == 0  # nothing half-written
    await memory.add("fine", {"content": "still works"})  # the slots were freed
    hanger.hanging = False
    await memory.add("k0", {"content": "hang on"}, vector_text="hang 0")  # not stuck in flight
    assert await memory.get("k0") == {"content": "hang on"}
    await memory.aclose()


async def test_a_model_call_that_swallows_its_cancellation_does_not_wedge_later_adds() -> None:
    """An async model that ignores the cancellation at embed_timeout (catches it and waits on):
    its add raises at the timeout, and with every slot taken by such calls a healthy add still
    embeds. The slot was held until the call ended, so past max_concurrency of them every later
    add waited forever (review R25)."""
    release = asyncio.Event()
    swallowed = 0

    async def stubborn(texts: list[str]) -> list[list[float]]:
        nonlocal swallowed
        if any(text.startswith("hang") for text in texts):
            try:
                await release.wait()
            except asyncio.CancelledError:
                swallowed += 1
                await release.wait()  # and on: the cancellation is swallowed
        return [vector(text) for text in texts]

    memory = MemoryPrimitive(
        embed=Embedder(stubborn, dims=DIMS, embed_timeout=0.3, max_concurrency=2)
    )
    async with asyncio.timeout(60):  # a hang guard
        for i in range(2):  # each takes a slot, and keeps its call going past its timeout
            with pytest.raises(EmbeddingError, match=r"embed_timeout=0\.3"):
                await memory.add(f"k{i}", {"content": "hang on"}, vector_text=f"hang {i}")
        await memory.add("fine", {"content": "a healthy text embeds"})
    assert await memory.get("fine") == {"content": "a healthy text embeds"}
    assert await memory.size() == 1  # nothing of the timed-out adds
    assert swallowed == 2
    release.set()  # the calls left behind end
    await asyncio.sleep(0)
    await memory.aclose()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_model_raising_system_exit_fails_its_call_not_the_program(kind: str) -> None:
    """A model that raises SystemExit (a library calling sys.exit on a bad input): the add
    raises EmbeddingError naming it, and the program goes on. asyncio ended the event loop
    with it, and the process exited (review R25)."""

    def exits(texts: list[str]) -> list[list[float]]:
        if any(text.startswith("exit") for text in texts):
            raise SystemExit(3)
        return [vector(text) for text in texts]

    async def exits_async(texts: list[str]) -> list[list[float]]:
        return exits(texts)

    memory = MemoryPrimitive(embed=exits if kind == "sync" else exits_async, dims=DIMS)
    with pytest.raises(EmbeddingError, match=r"SystemExit\(3\)"):
        await memory.add("k", {"content": "bye"}, vector_text="exit now")
    await memory.add("fine", {"content": "still running"})
    assert await memory.size() == 1
    await memory.aclose()


async def test_a_cancelled_caller_frees_the_slot_and_the_in_flight_text() -> None:
    """Callers cancelled while the model hangs release it: later calls for that text run again."""
    hanger = AsyncHanger()
    embedder = Embedder(hanger, dims=DIMS, embed_timeout=3600, max_concurrency=4)
    for i in range(4):  # every slot, were they kept
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(embedder.embed([f"hang {i}"]), 0.05)
    await eventually(lambda: hanger.cancelled == 4)  # no caller left: each call was cancelled
    async with asyncio.timeout(60):  # a guard against a wedged embedder, not a timing test
        hanger.hanging = False
        rows = await embedder.embed(["hang 0", "other"])
    assert rows.shape == (2, DIMS)
    await embedder.aclose()


async def test_a_shared_text_keeps_running_for_the_caller_still_waiting() -> None:
    """One of two callers of a text cancelled: the model call goes on for the other one."""
    gate = asyncio.Event()

    async def slow(texts: list[str]) -> list[list[float]]:
        await gate.wait()
        return [vector(text) for text in texts]

    embedder = Embedder(slow, dims=DIMS, embed_timeout=3600)
    first = asyncio.create_task(embedder.embed(["shared"]))
    second = asyncio.create_task(embedder.embed(["shared"]))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    assert (await second).shape == (1, DIMS)
    assert embedder.stats()["model_calls"] == 1


async def test_four_hung_sync_calls_do_not_stop_later_adds(release: threading.Event) -> None:
    """A sync embedder hung in four threads: those adds time out and later adds still work."""

    def embed(texts: list[str]) -> list[list[float]]:
        if any(text.startswith("hang") for text in texts):
            release.wait()  # hangs until the test ends
        return [vector(text) for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=DIMS, embed_timeout=0.5)
    adds = [memory.add(f"k{i}", {"content": "x"}, vector_text=f"hang {i}") for i in range(4)]
    results = await asyncio.gather(*adds, return_exceptions=True)
    assert all(isinstance(r, EmbeddingError) for r in results), results
    for i in range(8):
        await memory.add(f"ok{i}", {"content": f"fine {i}"})
    assert await memory.size() == 8
    await memory.aclose()


async def test_sync_embedders_run_on_daemon_threads_that_aclose_ends() -> None:
    """A sync model call runs on the library's daemon thread, and aclose() ends the idle ones."""
    names: list[tuple[str, bool]] = []

    def embed(texts: list[str]) -> list[list[float]]:
        names.append((threading.current_thread().name, threading.current_thread().daemon))
        return [vector(text) for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=DIMS)
    await memory.add("a", {"content": "one"})
    ((name, daemon),) = names
    assert name.startswith("tta-embed")
    assert daemon

    def ours() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == name]

    assert ours()
    await memory.aclose()
    await eventually(lambda: not ours())


def test_a_hung_sync_embedder_does_not_keep_the_program_from_exiting() -> None:
    """A program whose sync embedder sleeps for an hour still exits when its work is done."""
    code = textwrap.dedent(
        """
        import asyncio, time
        from tta_dev_primitives import MemoryPrimitive
        from tta_dev_primitives.exceptions import EmbeddingError

        def embed(texts):
            time.sleep(3600)

        async def main():
            memory = MemoryPrimitive(embed=embed, dims=4, embed_timeout=0.5)
            try:
                await memory.add("k", {"content": "hello"})
            except EmbeddingError as exc:
                print("refused:", exc)
            pending = asyncio.ensure_future(memory.add("k2", {"content": "bye"}))
            await asyncio.sleep(0)  # in flight when the program ends
            del pending

        asyncio.run(main())
        print("done")
        """
    )
    try:  # the timeout guards the suite from a hang; it is not what is tested
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the program hung on its sleeping embedder thread instead of exiting")
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout
    assert "embed_timeout" in result.stdout
    assert result.stdout.strip().endswith("done")


async def test_a_nan_vector_fails_only_its_own_add() -> None:
    """Twenty adds batched into one model call: the one NaN row raises, the 19 others are stored."""
    calls: list[int] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return [[math.nan] * DIMS if "bad" in text else vector(text) for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=DIMS)
    keys = [f"k{i}" for i in range(20)]
    texts = ["bad apple" if i == 7 else f"good {i}" for i in range(20)]
    results: list[Any] = await asyncio.gather(
        *(memory.add(k, {"content": t}) for k, t in zip(keys, texts, strict=True)),
        return_exceptions=True,
    )
    assert calls == [20]  # one batch, so the bad row really shared it
    failed = [k for k, r in zip(keys, results, strict=True) if isinstance(r, EmbeddingError)]
    assert failed == ["k7"]
    assert "NaN" in str(results[7])
    assert await memory.size() == 19
    assert await memory.get("k7") is None


async def test_a_wrong_length_row_fails_only_its_own_text() -> None:
    """A ragged result (one row of the wrong length) fails that text; the rest embed."""

    async def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 2.0] if text == "short" else vector(text) for text in texts]

    embedder = Embedder(embed, dims=DIMS)
    results = await asyncio.gather(
        embedder.embed(["one"]), embedder.embed(["short"]), embedder.embed(["two"]),
        return_exceptions=True,
    )  # fmt: skip
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert isinstance(results[1], EmbeddingError)
    assert "2 dims, expected 4" in str(results[1])


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "30", True])
def test_embed_timeout_must_be_a_positive_number(bad: Any) -> None:
    """A zero, negative, infinite or non-number embed_timeout is refused at construction."""
    with pytest.raises(ValueError, match="embed_timeout"):
        MemoryPrimitive(embed=lambda texts: [vector(t) for t in texts], embed_timeout=bad)


async def test_a_text_the_model_refuses_fails_only_its_own_add() -> None:
    """Twenty adds batched into one call; the model refuses the whole call for one text (as a
    provider does for an input over its token limit): only that add fails, the 19 are stored."""
    calls: list[list[str]] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        calls.append(list(texts))
        if any("refused" in text for text in texts):
            raise ValueError("input too long")
        return [vector(text) for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=DIMS)
    keys = [f"k{i}" for i in range(20)]
    texts = ["refused text" if i == 13 else f"good {i}" for i in range(20)]
    results: list[Any] = await asyncio.gather(
        *(memory.add(k, {"content": t}) for k, t in zip(keys, texts, strict=True)),
        return_exceptions=True,
    )
    assert len(calls[0]) == 20  # one batch first, so the refused text really shared it
    failed = [k for k, r in zip(keys, results, strict=True) if isinstance(r, BaseException)]
    assert failed == ["k13"]
    assert isinstance(results[13], EmbeddingError)
    assert isinstance(results[13].__cause__, ValueError)
    assert "input too long" in str(results[13])
    assert await memory.size() == 19
    assert await memory.get("k13") is None
    assert len(calls) <= 1 + 2 * 5  # halving: two calls a level, five levels for 20 texts
    assert sum(len(batch) for batch in calls[1:]) <= 20 * 3  # no text sent one by one


async def test_a_model_that_is_down_fails_every_text_after_three_calls() -> None:
    """When both halves fail too, the fault is not one text's: the halving stops there, so a
    model that is down (or rate-limiting) is not called once per text."""
    calls: list[int] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        raise ConnectionError("model server down")

    memory = MemoryPrimitive(embed=embed, dims=DIMS)
    results = await asyncio.gather(
        *(memory.add(f"k{i}", {"content": f"text {i}"}) for i in range(16)),
        return_exceptions=True,
    )
    assert all(isinstance(r, EmbeddingError) for r in results)
    assert all("model server down" in str(r) for r in results)
    assert sorted(calls) == [8, 8, 16]
    assert await memory.size() == 0


async def test_two_refused_texts_in_different_halves_fail_the_batch_they_shared() -> None:
    """The halving finds one refused text; with two in different halves, both halves fail and
    every text of that call fails (the documented limit), and each is embedded again later."""

    async def embed(texts: list[str]) -> list[list[float]]:
        if any("refused" in text for text in texts):
            raise ValueError("input too long")
        return [vector(text) for text in texts]

    embedder = Embedder(embed, dims=DIMS)
    texts = ["refused a", "b", "c", "d", "refused e", "f", "g", "h"]
    results = await asyncio.gather(*(embedder.embed([t]) for t in texts), return_exceptions=True)
    assert all(isinstance(r, EmbeddingError) for r in results)
    again = await embedder.embed(["b", "c"])  # nothing was cached from the failure
    assert again.shape == (2, DIMS)


async def test_a_search_question_the_model_refuses_fails_only_that_search() -> None:
    """Questions are batched too: one refused question fails its own search, not the others."""

    async def embed(texts: list[str]) -> list[list[float]]:
        if any("refused" in text for text in texts):
            raise ValueError("input too long")
        return [vector(text) for text in texts]

    memory = MemoryPrimitive(embed=embed, dims=DIMS)
    await memory.add("a", {"content": "apples and pears"})
    questions = [f"apples {i}" for i in range(7)] + ["refused apples"]
    results = await asyncio.gather(
        *(memory.search(q, mode="semantic") for q in questions), return_exceptions=True
    )
    assert [isinstance(r, EmbeddingError) for r in results] == [False] * 7 + [True]
    assert all(r == [{"content": "apples and pears"}] for r in results[:7])
