"""The replicas a searching process keeps: the whole namespace's, and one per user, LRU-capped.

A search scoped to a user (``"u1"`` or ``"u1:s1"``) needs only that user's memories: the
replica of its first key segment, which reads only that segment's feed in Redis. An unscoped
search needs the whole namespace's replica (about 0.7 KB of memory per memory, and a first
load of the whole namespace); once a process has it, scoped searches use it too, since it
holds every scope already. Segment replicas are dropped least recently used first once there
are more than ``max_scopes`` of them or they hold more than ``scope_budget`` memories in all
(the one just searched is always kept).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from tta_dev_primitives._blocked import fork_safe
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._scopes import first_segment
from tta_dev_primitives.stores._base import Document
from tta_dev_primitives.stores._redis.replica import Replica

__all__ = ["MAX_SCOPES", "SCOPE_BUDGET", "SCOPE_REPLICAS", "Replicas"]

#: Segment replicas a process keeps at most.
MAX_SCOPES = 256
#: Memories the segment replicas hold in all, at most (about 0.7 KB each: ~70 MB).
SCOPE_BUDGET = 100_000
#: Whether scoped searches use segment replicas (``False``: the whole namespace's replica). A
#: scoped search ranks with the scope's own statistics, which a segment replica holds in full,
#: so both rank exactly as in-process.
SCOPE_REPLICAS = True


class Replicas:
    """The whole-namespace replica (made on the first unscoped search) and segment replicas."""

    def __init__(
        self,
        indexing: Indexing,
        bases: list[str],
        partition_of: Callable[[str], str],
        *,
        max_scopes: int = MAX_SCOPES,
        scope_budget: int = SCOPE_BUDGET,
        scope_replicas: bool = SCOPE_REPLICAS,
        on_changed: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.indexing = indexing
        self._on_changed = on_changed  # each replica tells it what other processes changed
        self.bases = bases
        self._partition_of = partition_of
        self.max_scopes = max_scopes
        self.scope_budget = scope_budget
        self.scope_replicas = scope_replicas
        self.full: Replica | None = None
        self.scoped: OrderedDict[str, Replica] = OrderedDict()
        self.dims: int | None = None
        # Threads each with its own event loop search at once: a search's trim (or a clear's
        # walk) iterating ``scoped`` while another's ``for_scope`` moved or added one raised
        # "OrderedDict mutated during iteration".
        self._lock = fork_safe(threading.Lock())

    def for_scope(self, scope: str | None) -> Replica:
        """The replica that answers a search in ``scope`` (a normalized scope, or None)."""
        with self._lock:
            return self._for_scope(scope)

    def _for_scope(self, scope: str | None) -> Replica:
        if scope is None or self.full is not None or not self.scope_replicas:
            if self.full is None:
                self.full = self._new("")
                self.scoped.clear()  # the full replica answers every scope from now on
            return self.full
        seg = first_segment(scope)
        replica = self.scoped.get(seg)
        if replica is None:
            replica = self.scoped[seg] = self._new(seg)
        self.scoped.move_to_end(seg)
        return replica

    def trim(self) -> None:
        """Drop the least recently used segment replicas beyond the count and memory caps."""
        scoped = self.scoped
        with self._lock:
            while len(scoped) > 1 and (
                len(scoped) > self.max_scopes
                or sum(len(r.index) for r in scoped.values()) > self.scope_budget
            ):
                scoped.popitem(last=False)

    def _new(self, seg: str) -> Replica:
        replica = Replica(
            self.indexing, self.bases, self._partition_of, seg=seg, on_changed=self._on_changed
        )
        if self.dims is not None:
            replica.expect_dims(self.dims)
        return replica

    def __iter__(self) -> Iterator[Replica]:
        with self._lock:
            replicas = [*([] if self.full is None else [self.full]), *self.scoped.values()]
        yield from replicas

    def expect_dims(self, dims: int) -> None:
        """This process embeds with ``dims`` (see ``Replica.expect_dims``)."""
        self.dims = dims
        for replica in self:
            replica.expect_dims(dims)

    def wrote(self, key: str, seq: int, document: Document) -> None:
        """This process wrote ``key``: the replicas that will read it reuse its document."""
        if self.full is not None:
            self.full.wrote(key, seq, document)
        replica = self.scoped.get(first_segment(key))
        if replica is not None:
            replica.wrote(key, seq, document)

    def cleared(self) -> None:
        """This process cleared the namespace: every replica starts over."""
        for replica in self:
            replica.cleared()
