"""Where a namespace's data lives in Redis: every key name and partition fact, spelled once.

A namespace is split into ``partitions`` hash slots by each key's first two ``:`` segments
(``user:session``), so a session's memories and their feed share a slot (Lua needs that on a
cluster) while a namespace spreads over shards. Keys of a partition start with its ``base``,
``<namespace>:{<namespace>#<p>}:``, followed by one of the suffixes below. The Lua scripts
(``lua``) get these names formatted into them from the same constants, so Python and Lua
cannot disagree:

- ``v:<key>``  the memory's JSON (string, with PX expiry for a TTL)
- ``r``        live keys by write sequence (zset): recency, and the feed of writes to replicate
- ``x``        expiry deadlines in ms (zset), swept by writes
- ``g``        deleted or expired keys by sequence (zset): tombstones for replicas and for
               versions, the newest ``TOMBSTONES`` kept; ``n.gcut`` is the newest one dropped
- ``w``        each live or tombstoned key's version (hash; see ``stores._versions``): that of
               the write that stored or deleted its value, which a later write must be newer
               than
- ``t``        each touched key's newest touch version and the ``w`` it was made over,
               ``'<version> <w>'`` (hash; until its next write): a touch changes no value, so a
               write older than the touch but newer than ``w`` still applies; the copy check
               reads the newer of the two, the touch only while ``w`` is unchanged (a process
               of the version before writes ``w`` without clearing ``t``)
- ``e``        each live key's embedding, float32 little-endian bytes (hash; only when the
               memory was written with an embedder: search scores vectors in the replica)
- ``n``        partition facts (hash): ``seq`` last sequence, ``epoch`` (changes when the
               partition is created or cleared), ``cv`` the newest clear's version, ``mv`` the
               newest write version seen (a live clear must be newer: ``RedisBackend.clear``),
               ``segs`` (set when the partition was created with the per-segment feeds below);
               ``ft`` is '1' once the namespace has a Query Engine index (``query_engine``),
               ``ftdims`` the size of that index's vectors, ``ftnext`` / ``ftdone`` how far
               its backfill of older memories got, ``ftdocs`` / ``ftlen`` how many documents
               with a length ``n`` the partition holds and their total length (BM25's
               statistics, kept by the scripts)
- ``h``        the partition's last sequence again (string): its head, which a replica reads
               for every partition in one ``MGET`` per node to skip those that did not change
- ``h:<seg>``  the sequence of the last change to one first key segment's feeds below (string,
               gone with them): a replica of that one segment skips a partition where only
               other users wrote, as long as ``hg`` and ``hm`` say nothing else moved
- ``hm``       ``h`` as this version's writers last set it: ``h`` differs once a writer of an
               older version (which moves no ``h:<seg>``) wrote since
- ``hg``       moved by a clear, and by a write that finds ``h`` and ``hm`` differ: every
               segment's replica reads the partition again
- ``r:<seg>``  the live keys of one first key segment (a user), by write sequence (zset): the
               feed a replica of one scope reads, so it never reads other users' memories
- ``g:<seg>``  that segment's tombstones (zset), trimmed with ``g``
- ``f:<key>``  only while ``n.ft`` is set: the memory's search document for the Redis Query
               Engine (hash: ``t`` its analysed terms, ``s`` its scope tags, ``q`` its write
               sequence, ``n`` its length in terms, ``e`` its first vector, ``nv`` how many
               vectors it has, ``c`` '1' when counted in ``fs``), expiring with the value
- ``fl``       the length ``n`` of each document that expires (hash), so that the expiry
               sweep can take it off ``ftdocs`` / ``ftlen`` once the document is gone
- ``fc``       the same for documents counted in their segment's totals (``c`` set: form 3)
- ``fs``       each first key segment's documents and their total length (hash, seg ->
               ``"<docs> <length>"``): a one-user search's BM25 statistics, kept by the scripts
               for documents of form 3 (their ``c`` field says they are counted)
- ``fv:<i>:<key>`` the same for the memory's further vectors (``s``, ``q``, ``e``), i = 1..nv-1
- ``n:dims``   partition 0 only, for a minute: the vector size the processes making the Query
               Engine index (or adding its vector field) agreed on (``query_engine._claim_dims``)
- ``m``        in partition 0 only (its slot, on a cluster): the namespace's facts about its
               writers (hash). Field ``embedder``, ``'<dims> <model_id>'``, names the embedder
               whose vectors the namespace holds: set (``HSETNX``) by the first process that
               writes a memory with a vector, read once by every process with an embedder
               before its first such write or semantic search (``embedder_record``), removed
               by a clear. A namespace written before it existed has none until then.

A key's first segment (``seg``) is its text up to its first ``:`` after the first character,
or the whole key: the scope prefix ``search._scopes`` matches first.
"""

from __future__ import annotations

import zlib
from typing import Final

from tta_dev_primitives.search._scopes import first_segment

__all__ = [
    "BACKFILL_LEASE",
    "CLUSTER_PARTITIONS",
    "DIMS_CLAIM",
    "DOC",
    "DOC_COUNTED",
    "DOC_LENGTHS",
    "DOC_VECTOR",
    "EMBEDDER_RECORD",
    "EXPIRY",
    "FACTS",
    "FACT_CLEARED",
    "FACT_ENGINE",
    "FACT_ENGINE_CURSOR",
    "FACT_ENGINE_DIMS",
    "FACT_ENGINE_DOCS",
    "FACT_ENGINE_DONE",
    "FACT_ENGINE_FORM",
    "FACT_ENGINE_LENGTH",
    "FACT_EPOCH",
    "FACT_NEWEST",
    "FACT_SEGMENTS",
    "FACT_SEQ",
    "FACT_TRIMMED",
    "FIELD_EMBEDDER",
    "FORGOTTEN",
    "FORGOTTEN_ORDER",
    "HEAD",
    "HEAD_EPOCH",
    "HEAD_MARK",
    "LIVE",
    "OWN_TYPES",
    "PARTITIONS_AT_ONCE",
    "SEGMENT_HEAD",
    "SEGMENT_TOTALS",
    "TOMBS",
    "TOUCHES",
    "VALUE",
    "VECTORS",
    "VERSIONS",
    "Layout",
    "base_among",
    "partition_key",
]

# -- a partition's keys (each after the partition's base) -----------------------------------
VALUE: Final = "v:"  # + key: the memory's value
LIVE: Final = "r"  # live keys by sequence; LIVE + ":" + seg: one segment's
EXPIRY: Final = "x"
TOMBS: Final = "g"  # tombstones by sequence; TOMBS + ":" + seg: one segment's
VERSIONS: Final = "w"
TOUCHES: Final = "t"  # a touched key's touch version (a touch is no write of its value)
VECTORS: Final = "e"
FACTS: Final = "n"
HEAD: Final = "h"
SEGMENT_HEAD: Final = "h:"  # + seg: the last change to that segment's feeds
HEAD_MARK: Final = "hm"  # HEAD as this version's writers last set it
HEAD_EPOCH: Final = "hg"  # moved when every segment's replica must read the partition again
DOC: Final = "f:"  # + key: the Query Engine document
DOC_VECTOR: Final = "fv:"  # + i + ":" + key: a further vector's document
DOC_LENGTHS: Final = "fl"  # the lengths of documents that expire (key -> n)
DOC_COUNTED: Final = "fc"  # the same, for documents counted in SEGMENT_TOTALS
SEGMENT_TOTALS: Final = "fs"  # first segment -> "<documents> <total length>"
FORGOTTEN: Final = "o"  # scope -> the version of its newest forget (older writes in it are stale)
FORGOTTEN_ORDER: Final = "oz"  # the same scopes by their forget's time, to keep the newest only
BACKFILL_LEASE: Final = "fb"  # the process backfilling the partition's documents (expires)
EMBEDDER_RECORD: Final = "m"  # partition 0 only: the namespace's embedder (``FIELD_EMBEDDER``)
DIMS_CLAIM: Final = "n:dims"  # partition 0 only, expiring: the engine index's agreed vector size
FIELD_EMBEDDER: Final = "embedder"  # '<dims> <model_id>' of the namespace's vectors

# -- fields of the partition's facts hash (FACTS) ------------------------------------------
FACT_SEQ: Final = "seq"
FACT_EPOCH: Final = "epoch"
FACT_CLEARED: Final = "cv"
FACT_NEWEST: Final = "mv"
FACT_SEGMENTS: Final = "segs"
FACT_TRIMMED: Final = "gcut"
FACT_ENGINE: Final = "ft"
FACT_ENGINE_DIMS: Final = "ftdims"
# Version 2 of the index (a length field ``n``): new names (version 1 had ``ftcur``, ``ftok``),
# so its backfill rewrites every document again.
FACT_ENGINE_CURSOR: Final = "ftnext"
FACT_ENGINE_DONE: Final = "ftdone"
FACT_ENGINE_DOCS: Final = "ftdocs"
FACT_ENGINE_LENGTH: Final = "ftlen"
#: Which form the partition's Query Engine documents have (``query_engine.DOCUMENTS``).
FACT_ENGINE_FORM: Final = "ftform"

#: The type each of a partition's own keys must have.
OWN_TYPES: Final = {
    FACTS: "hash", VERSIONS: "hash", VECTORS: "hash", LIVE: "zset", EXPIRY: "zset", TOMBS: "zset",
    DOC_LENGTHS: "hash", DOC_COUNTED: "hash", SEGMENT_TOTALS: "hash", TOUCHES: "hash",
    FORGOTTEN: "hash", FORGOTTEN_ORDER: "zset",
}  # fmt: skip
#: A partition's own keys that scripts touch, whatever the memory: each script declares them
#: (``Layout.declared``), with the memory's own and its segment's, on a cluster.
_SCRIPT_KEYS = (
    FACTS, HEAD, HEAD_MARK, HEAD_EPOCH, LIVE, TOMBS, EXPIRY, VERSIONS, TOUCHES, VECTORS,
    DOC_LENGTHS, DOC_COUNTED, SEGMENT_TOTALS, FORGOTTEN, FORGOTTEN_ORDER,
)  # fmt: skip
# Those a WRONGTYPE refusal names in a warning (``e`` is created only with an embedder).
_CHECKED = (FACTS, VERSIONS, LIVE, EXPIRY, TOMBS)

#: Partitions of a namespace on a cluster: enough hash slots to spread over any sensible number
#: of shards. Every process must use the same number, so it is a constant, not a setting.
CLUSTER_PARTITIONS: Final = 64
#: Calls of one operation (a forget's marks, a size, a clear, a replica's catch-up) in flight at
#: once, over a cluster's partitions: 64 at once on a busy machine waited in turn for replies,
#: the last past the timeout, and a healthy cluster was taken for down (a review: forget).
PARTITIONS_AT_ONCE: Final = 8


def partition_key(key: str) -> str:
    """The part of a key (or scope) that picks its partition: up to its second ``:``, if any.

    A one-segment scope (``"u1"``) names no single partition: its keys spread over all of them.
    """
    first = key.find(":")
    if first == -1:
        return key
    second = key.find(":", first + 1)
    return key if second == -1 else key[:second]


def base_among(bases: list[str], key: str) -> str:
    """The base, among a namespace's partition ``bases``, of the partition that holds ``key``."""
    if len(bases) == 1:
        return bases[0]
    return bases[zlib.crc32(partition_key(key).encode()) % len(bases)]


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a namespace matches only itself."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class Layout:
    """One namespace's key names over ``partitions`` partitions (a cluster may raise them)."""

    __slots__ = ("bases", "namespace", "partitions")

    def __init__(self, namespace: str, partitions: int = 1) -> None:
        self.namespace = namespace
        self.partitions = partitions
        self.bases = self._make_bases(partitions)

    def _make_bases(self, partitions: int) -> list[str]:
        ns = self.namespace
        return [f"{ns}:{{{ns}#{p}}}:" for p in range(partitions)]

    def repartition(self, partitions: int) -> None:
        """Use ``partitions`` partitions (a new ``bases`` list, so holders see the change)."""
        self.partitions = partitions
        self.bases = self._make_bases(partitions)

    def base(self, key: str) -> str:
        """The base of the partition that holds ``key``."""
        return base_among(self.bases, key)

    def scope_base(self, scope: str | None) -> str | None:
        """The partition every key of ``scope`` lies in, if the scope names one (``user:session``
        and deeper); None for a one-segment scope or none, whose keys spread over all."""
        if scope is None or scope.find(":", 1) == -1:
            return None
        return self.base(scope)

    @staticmethod
    def declared(base: str, key: str | None = None, seg: str | None = None) -> list[str]:
        """The keys a script on partition ``base`` names to Redis: ``key``'s value first (the
        write scripts' ``KEYS[1]``), its document and its segment's feeds (or ``seg``'s), then
        the partition's own keys.

        Redis routes a script, and checks a slot being resharded, by these alone: while a slot
        moves between masters it runs the script only where all of them are (else ASK or
        TRYAGAIN), so a script never makes a partition's keys anew on the new master beside
        those still on their way (the move then stops at BUSYKEY) nor reads half of them.
        """
        names = []
        if key is not None:
            names += [base + VALUE + key, base + DOC + key]
            seg = first_segment(key)  # the scripts' seg_of
        if seg:
            names += [base + LIVE + ":" + seg, base + TOMBS + ":" + seg]
            names.append(base + SEGMENT_HEAD + seg)
        return names + [base + suffix for suffix in _SCRIPT_KEYS]

    def value(self, key: str) -> str:
        """The name of ``key``'s value."""
        return self.base(key) + VALUE + key

    @staticmethod
    def value_in(base: str, key: str) -> str:
        """The name of ``key``'s value, its partition's base known."""
        return base + VALUE + key

    @staticmethod
    def facts(base: str) -> str:
        """The name of a partition's facts hash."""
        return base + FACTS

    @staticmethod
    def segment_totals(base: str) -> str:
        """The name of a partition's per-segment document counts and lengths."""
        return base + SEGMENT_TOTALS

    @staticmethod
    def head(base: str) -> str:
        """The name of a partition's head."""
        return base + HEAD

    @staticmethod
    def segment_heads(base: str, seg: str) -> list[str]:
        """The names a replica of segment ``seg`` reads to tell whether the partition changed
        for it: the partition's head, its mark, its epoch of heads and the segment's head."""
        return [base + HEAD, base + HEAD_MARK, base + HEAD_EPOCH, base + SEGMENT_HEAD + seg]

    def embedder_record(self) -> str:
        """The name of the namespace's record of its embedder (in partition 0's slot)."""
        return self.bases[0] + EMBEDDER_RECORD

    @staticmethod
    def dims_claim(base: str) -> str:
        """The name of the claim on the engine index's vector size (``base``: partition 0's)."""
        return base + DIMS_CLAIM

    @staticmethod
    def backfill_lease(base: str) -> str:
        """The name of a partition's backfill lease: which process backfills it now."""
        return base + BACKFILL_LEASE

    @staticmethod
    def live(base: str) -> str:
        """The name of a partition's live keys by sequence."""
        return base + LIVE

    @staticmethod
    def versions(base: str) -> str:
        """The name of a partition's versions hash."""
        return base + VERSIONS

    @staticmethod
    def touches(base: str) -> str:
        """The name of a partition's touch versions hash."""
        return base + TOUCHES

    @staticmethod
    def vectors(base: str) -> str:
        """The name of a partition's embeddings hash."""
        return base + VECTORS

    def own_keys(self) -> dict[str, str]:
        """Each partition's own keys, with the type each must have (to name a WRONGTYPE)."""
        return {base + suffix: OWN_TYPES[suffix] for base in self.bases for suffix in _CHECKED}

    def scan_pattern(self) -> str:
        """A SCAN glob that matches this namespace's keys and no other's."""
        return _glob_escape(self.namespace) + ":{" + _glob_escape(self.namespace) + "#*"

    @staticmethod
    def partition_of_name(name: bytes) -> bytes:
        """The partition part (up to its ``}``) of a key name this namespace owns."""
        return name[: name.index(b"}") + 1]

    @staticmethod
    def index_name(namespace: str) -> str:
        """The name of a namespace's Query Engine index."""
        return f"{namespace}:idx2"

    @staticmethod
    def master_index_name(namespace: str, n: int) -> str:
        """The ``n``-th candidate name of a cluster master's index: its hash tag picks the slot
        (``query_engine`` takes the first whose slot the master owns)."""
        return f"{namespace}:idx2:{{{n}}}"

    @staticmethod
    def old_index_name(namespace: str) -> str:
        """The name of a namespace's index before version 2 (documents without ``n``)."""
        return f"{namespace}:idx"

    @staticmethod
    def old_master_index_name(namespace: str, n: int) -> str:
        """``master_index_name`` before version 2."""
        return f"{namespace}:idx:{{{n}}}"

    @staticmethod
    def document_prefixes(bases: list[str]) -> list[str]:
        """The prefixes of the partitions' Query Engine documents (``FT.CREATE ... PREFIX``)."""
        return [base + kind for base in bases for kind in (DOC, DOC_VECTOR)]

    @staticmethod
    def key_of_document(doc_id: str) -> str:
        """The memory key of a document id ``<base>f:<key>`` or ``<base>fv:<i>:<key>``."""
        rest = doc_id[doc_id.index("}:") + 2 :]
        if rest.startswith(DOC):
            return rest[len(DOC) :]
        return rest[rest.index(":", len(DOC_VECTOR)) + 1 :]
