"""``turn_key`` gives every turn its own key, ordered by time, with checked ids."""

from __future__ import annotations

import threading

import pytest

from tta_dev_primitives import create_memory_key, turn_key


def test_same_reply_twice_gets_two_keys() -> None:
    """Two turns with the same text get different keys (create_memory_key would give one)."""
    value = {"reply": "OK, noted."}
    assert create_memory_key("u1", "s1", value) == create_memory_key("u1", "s1", value)
    assert turn_key("u1", "s1") != turn_key("u1", "s1")


def test_ten_thousand_calls_are_unique_and_ordered() -> None:
    """10k calls in a row give 10k distinct keys, sorted in call order."""
    keys = [turn_key("u1", "s1") for _ in range(10_000)]
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys)


def test_threads_never_collide() -> None:
    """8 threads making 2k keys each never produce the same key twice."""
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(turn_key("u1", "s1") for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [key for out in results for key in out]
    assert len(set(every)) == 16_000
    for out in results:
        assert out == sorted(out)


def test_shape_and_scope() -> None:
    """The key is user:session:suffix, so a scope of "user:session" finds it."""
    key = turn_key("alice", "chat-1")
    user, session, suffix = key.split(":")
    assert (user, session) == ("alice", "chat-1")
    assert len(suffix) == 13 + 6 + 4
    int(suffix, 16)


@pytest.mark.parametrize(
    ("user_id", "session_id"), [("", "s"), ("u", ""), ("a:b", "s"), ("u", "s:1")]
)
def test_bad_ids_raise_value_error(user_id: str, session_id: str) -> None:
    """Empty ids and ids containing ':' raise ValueError, as for create_memory_key."""
    with pytest.raises(ValueError, match=r"must not be empty|contains"):
        turn_key(user_id, session_id)


def test_non_str_id_raises_type_error() -> None:
    """A non-str id raises TypeError."""
    with pytest.raises(TypeError):
        turn_key(1, "s")  # type: ignore[arg-type]
