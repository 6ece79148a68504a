"""The in-process storage engine: LRU order, TTL deadlines and an optional search index.

Synchronous and guarded by a lock, so the sync ``InMemoryStore`` and the async in-process
backend share one implementation. Payloads are opaque to it.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from tta_dev_primitives._blocked import fork_safe
from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._scopes import in_scope
from tta_dev_primitives.stores._base import Document

__all__ = ["Clock", "LocalStore"]

Clock = Callable[[], float]


# (payload, deadline, version, written): a tuple, so the garbage collector can untrack it.
# ``version`` is the store's count at the entry's last put or touch (listing order, deadlines);
# ``written`` its count at the last put only: a touch changes no value (``delete_older``).
_Entry = tuple[object, float | None, int, int]
_PAYLOAD: Final = 0
_DEADLINE: Final = 1
_VERSION: Final = 2
_WRITTEN: Final = 3
#: The largest searchable store that defers indexing (``LocalStore._pending``): Redis's
#: stand-by copy (1,000 memories by default, searched only in an outage) then never indexes a
#: memory evicted before its index is read. A larger store indexes each put at once, as before:
#: its pending documents would be indexed before they were evicted anyway.
PENDING_MAX: Final = 1024


class LocalStore:
    """At most ``max_size`` payloads by key, least recently used evicted first."""

    __slots__ = (
        "_clock",
        "_defer",
        "_entries",
        "_expiries",
        "_index",
        "_lock",
        "_pending",
        "_timed",
        "_version",
        "evicted",
        "max_size",
    )

    def __init__(
        self, max_size: int, *, searchable: bool = True, clock: Clock = time.monotonic
    ) -> None:
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._index = SearchIndex() if searchable else None
        # Keys put since the index was last read, with their documents, in put order: indexed
        # (``_index_pending``) before anything reads the index, so a key evicted before then
        # costs its index nothing (half a write's CPU in Redis's stand-by copy: the copy keeps
        # the newest 1,000 memories, and is searched only in an outage).
        self._pending: dict[str, Document | None] = {}
        self._defer = searchable and max_size <= PENDING_MAX  # (so _pending holds at most that)
        self._expiries: list[tuple[float, int, str]] = []
        self._timed = 0  # live entries with a deadline: the heap's other entries are stale
        self._version = 0
        self.evicted = 0  # entries dropped to stay within max_size, since creation
        self._lock = fork_safe(threading.Lock())  # no method re-enters another

    def _expire(self) -> None:
        """Drop entries whose deadline has passed (amortised: each deadline is popped once)."""
        heap = self._expiries
        if not heap or heap[0][0] > self._clock():
            return
        now = self._clock()
        while heap and heap[0][0] <= now:
            _, version, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry[_VERSION] == version:
                self._drop(key)

    def _drop(self, key: str) -> None:
        if self._entries.pop(key)[_DEADLINE] is not None:
            self._timed -= 1
        if self._index is not None:
            self._pending.pop(key, None)
            self._index.remove(key)  # (an older document of it may be indexed)

    def _index_pending(self) -> None:
        """Index every document put since the index was last read (``_index_oldest``)."""
        self._index_oldest(len(self._pending))

    def index_some(self, count: int) -> bool:
        """Index up to ``count`` of the oldest pending documents; True if some still wait (an
        async reader indexes them a slice a loop turn: ``InProcessSearchBackend``)."""
        with self._lock:
            return self._index_oldest(count)

    def _index_oldest(self, count: int) -> bool:
        """Index up to ``count`` pending documents, oldest put first (the order ``SearchIndex``
        takes for recency, as if each had been indexed when put); True if some still wait."""
        index, pending = self._index, self._pending
        if index is None:
            return False
        for key in list(itertools.islice(pending, count)):
            document = pending.pop(key)
            index.add(key, {} if document is None else document.terms)
        return bool(pending)

    def _index_later(self, key: str, document: Document | None) -> None:
        """Keep ``key``'s document to index once the index is read (``_pending``). A vector is
        checked as it is indexed, so a document with one is indexed now (after those before it,
        in order): a refused vector raises from ``put``, as before."""
        index = self._index
        if index is None:
            return
        if not self._defer or (document is not None and document.vector is not None):
            self._index_pending()
            if document is None:
                index.add(key, {})
            else:
                index.add(key, document.terms, vector=document.vector)
            return
        pending = self._pending
        pending.pop(key, None)  # its place is its latest put's
        pending[key] = document

    def _compact(self) -> None:
        """Rebuild the TTL heap from the live deadlines once stale ones outnumber them.

        A deleted or rewritten key leaves its old deadline in the heap until it passes (an hour,
        a day): without this, add/delete cycles with a TTL grow the heap without bound.
        Rebuilding costs O(live) and happens after as many stale entries: O(1) amortised.
        """
        if len(self._expiries) <= 2 * self._timed + 64:
            return
        self._expiries = [
            (entry[_DEADLINE], entry[_VERSION], key)
            for key, entry in self._entries.items()
            if entry[_DEADLINE] is not None
        ]
        heapq.heapify(self._expiries)

    @property
    def expiry_entries(self) -> int:
        """Entries in the TTL heap, stale ones included (at most about twice the live TTLs)."""
        with self._lock:
            return len(self._expiries)

    def put(
        self,
        key: str,
        payload: object,
        ttl: float | None = None,
        document: Document | None = None,
    ) -> list[str]:
        """Store ``payload`` under ``key``; return the keys evicted to make room."""
        with self._lock:
            self._expire()
            self._version += 1
            deadline = None if ttl is None else self._clock() + ttl
            entries = self._entries
            old = entries.get(key)
            if old is not None and old[_DEADLINE] is not None:
                self._timed -= 1  # its heap entry is stale now
            entries[key] = (payload, deadline, self._version, self._version)
            entries.move_to_end(key)
            if deadline is not None:
                self._timed += 1
                heapq.heappush(self._expiries, (deadline, self._version, key))
                self._compact()
            self._index_later(key, document)
            evicted = []
            while len(entries) > self.max_size:
                oldest = next(iter(entries))
                self._drop(oldest)
                evicted.append(oldest)
            self.evicted += len(evicted)
            return evicted

    def get(self, key: str) -> object | None:
        """The payload under ``key`` (refreshing its recency), or None."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[_PAYLOAD]

    def ttl(self, key: str) -> float | None:
        """Seconds left before ``key`` expires; None if it has no deadline or is absent."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None or entry[_DEADLINE] is None:
                return None
            return max(entry[_DEADLINE] - self._clock(), 0.0)

    def touch(self, key: str, ttl: float | None) -> bool:
        """Give ``key`` a new deadline ``ttl`` seconds from now (None: none); False if absent."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                return False
            if entry[_DEADLINE] is not None:
                self._timed -= 1  # its heap entry is stale now
            self._version += 1
            deadline = None if ttl is None else self._clock() + ttl
            self._entries[key] = (entry[_PAYLOAD], deadline, self._version, entry[_WRITTEN])
            if deadline is not None:
                self._timed += 1
                heapq.heappush(self._expiries, (deadline, self._version, key))
                self._compact()
            if key in self._pending:  # (indexed later than every document before it)
                self._pending[key] = self._pending.pop(key)
            elif self._index is not None:
                self._index_pending()  # a touch makes it newer than every put before it
                self._index.touch(key)
            return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        return self.delete_older(key, sys.maxsize)  # (every value was put before that mark)

    def write_mark(self) -> int:
        """A mark of the puts and touches made so far, for ``delete_older``."""
        with self._lock:
            return self._version

    def delete_older(self, key: str, mark: int) -> bool:
        """Remove ``key`` if its value was put before ``mark`` was taken (``write_mark``): a
        value put since stays, even if it was touched since. False if nothing was removed."""
        with self._lock:
            self._expire()
            entry = self._entries.get(key)
            if entry is None or entry[_WRITTEN] > mark:
                return False
            self._drop(key)
            self._compact()
            return True

    def search(
        self, query: Query, limit: int, scope: str | None = None
    ) -> list[tuple[str, object, float]]:
        """``(key, payload, score)`` of the best matches (see ``SearchIndex.search_scored``)."""
        if self._index is None:
            raise InvalidArgumentTypeError("this store was created without a search index")
        with self._lock:
            self._expire()
            self._index_pending()
            found = self._index.search_scored(query, limit, scope)
            return [(key, self._entries[key][_PAYLOAD], score) for key, score in found]

    def clear(self) -> None:
        """Remove everything."""
        with self._lock:
            self._entries.clear()
            self._expiries.clear()
            self._timed = 0
            if self._index is not None:
                self._pending.clear()
                self._index.clear()

    def size(self) -> int:
        """Number of live entries."""
        with self._lock:
            self._expire()
            return len(self._entries)

    def items(self) -> list[tuple[str, object, float | None]]:
        """A snapshot of every live ``(key, payload, seconds left or None)``, oldest write first."""
        with self._lock:
            self._expire()
            now = self._clock()
            ordered = sorted(self._entries.items(), key=lambda item: item[1][_VERSION])
            return [
                (key, entry[_PAYLOAD], None if entry[_DEADLINE] is None else entry[_DEADLINE] - now)
                for key, entry in ordered
            ]

    def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, object, int]], tuple[int, str] | None]:
        """Live ``(key, payload, write number)`` of ``scope``, newest write first, after the
        position ``after``: ``limit`` of them, and the position to go on from (None: done)."""
        with self._lock:
            self._expire()
            entries = self._entries
            if scope and self._index is not None:
                self._index_pending()
                # The scope's own keys, from the index (every entry is indexed): a page of one
                # user's memories no longer walks the whole store (80 ms at 100,000).
                found = ((key, entries.get(key)) for key in self._index.scope_keys(scope))
                scoped = [(key, entry) for key, entry in found if entry is not None]
            else:
                scoped = [(key, entry) for key, entry in entries.items() if in_scope(key, scope)]
            rows = [
                (entry[_VERSION], key, entry[_PAYLOAD])
                for key, entry in scoped
                if after is None or (entry[_VERSION], key) < after
            ]
        rows = heapq.nlargest(limit + 1, rows, key=lambda row: row[0])
        following = (rows[limit - 1][0], rows[limit - 1][1]) if len(rows) > limit else None
        return [(key, payload, version) for version, key, payload in rows[:limit]], following

    def key_slice(self, start: int, count: int) -> list[str]:
        """Up to ``count`` keys from position ``start`` in the store's recency order (for a
        walk over every key in turns; cheaper than sorting)."""
        with self._lock:
            return list(itertools.islice(self._entries, start, start + count))

    def keys(self) -> list[str]:
        """Keys from oldest to newest write (eviction order differs: reads refresh recency)."""
        with self._lock:
            self._expire()
            return sorted(self._entries, key=lambda key: self._entries[key][_VERSION])
