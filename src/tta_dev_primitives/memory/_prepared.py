"""A memory made ready to store: its JSON, search terms and embedded text, worked out on a worker
thread when the value is large, so that an 8 MiB memory (0.6-2 s of Python) never stalls the
event loop and every other request it serves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from tta_dev_primitives._blocked import heavy_in_own_thread
from tta_dev_primitives.memory._values import decode_value, encode_value
from tta_dev_primitives.search._indexing import Indexing

__all__ = [
    "Prepared",
    "decode_off_loop",
    "decoded_here",
    "is_small",
    "prepare_now",
    "prepare_off_loop",
]

#: A value is analysed on the event loop while it has at most this many parts (strings,
#: numbers, lists, fields) and characters of text: about 0.3 ms of analysis for English, 4 ms
#: for Chinese. Anything larger goes to a thread, whose hop costs about 0.1 ms.
SMALL_PARTS: Final = 256
SMALL_CHARS: Final = 4096
#: Stored memories read back (``get``, a page of ``search`` or ``list_memories``) are decoded
#: on a worker thread past this many bytes of JSON in all: 64 KiB is at most a few ms of
#: decoding, 8 MiB of small objects a few hundred.
DECODE_BYTES: Final = 64 * 1024


#: What ``add`` stores: the JSON, the term counts, and the text to embed ("" unless asked for).
Prepared = tuple[str, dict[str, int], str]


def is_small(value: Any) -> bool:
    """True if ``value`` is cheap to analyse; a walk that stops at the first sign it is not."""
    if type(value) is dict and len(value) <= 32:
        # The usual memory, at a glance: fields of text, numbers and short lists of text.
        chars = 0
        for key, item in value.items():
            kind = type(item)
            chars += len(key) if type(key) is str else 0
            if kind is str:
                chars += len(item)
            elif kind is list and len(item) <= 32:
                for text in item:
                    if type(text) is not str:
                        return _walk_is_small(value)
                    chars += len(text)
            elif not (item is None or kind is int or kind is float or kind is bool):
                return _walk_is_small(value)
        return chars <= SMALL_CHARS
    return _walk_is_small(value)


def _walk_is_small(value: Any) -> bool:
    parts, chars = SMALL_PARTS, SMALL_CHARS
    stack = [value]
    while stack:
        obj = stack.pop()
        parts -= 1
        if isinstance(obj, str):
            chars -= len(obj)
        elif isinstance(obj, dict):
            if len(obj) > parts:
                return False
            chars -= sum(len(k) for k in obj if isinstance(k, str))
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            if len(obj) > parts:
                return False
            stack.extend(obj)
        if parts < 0 or chars < 0:
            return False
    return True


def prepare_now(indexing: Indexing, value: Any, *, text: bool) -> Prepared:
    """Check and encode ``value`` and analyse it, here (``InvalidMemoryValueError`` if it
    cannot be stored); with ``text``, also the text to embed."""
    return (encode_value(value), *indexing.analyse(value, text=text))


def _prepare_large(indexing: Indexing, value: Any, text: bool) -> Prepared:
    """``prepare_now`` on a worker thread: the terms come from the JSON's own decoding, a copy that
    no task can change meanwhile, so they always describe the payload stored."""
    payload = encode_value(value)
    return (payload, *indexing.analyse(json.loads(payload), text=text))


async def prepare_off_loop(indexing: Indexing, value: Any, *, text: bool) -> Prepared:
    """``prepare_now`` for a value that is not ``is_small``, on a worker thread."""
    return await heavy_in_own_thread(_prepare_large, indexing, value, text)


def decoded_here(payloads: Sequence[Any]) -> bool:
    """True if ``payloads`` are small enough to decode on the event loop (``DECODE_BYTES``)."""
    return sum(len(p) for p in payloads if isinstance(p, str | bytes)) <= DECODE_BYTES


def _decode_each(payloads: Sequence[Any]) -> list[dict[str, Any] | None]:
    return [decode_value(p) for p in payloads]


async def decode_off_loop(payloads: Sequence[Any]) -> list[dict[str, Any] | None]:
    """``decode_value`` of each stored payload, in order, on a worker thread: reading a large
    memory (8 MiB of small objects is a few hundred ms of decoding) never stalls the loop."""
    return await heavy_in_own_thread(_decode_each, payloads)
