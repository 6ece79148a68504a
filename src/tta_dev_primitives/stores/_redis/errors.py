"""Which redis-py errors mean "Redis cannot serve now" and which an operator must fix.

Anything that means "Redis cannot serve now" becomes ``BackendUnavailableError`` (the hybrid
falls back and probes): connection and timeout errors, replies that are not RESP (another
service on the port), and redis-py's cluster client failing on a node its slot map lacks (a
slot moving to a master added since, ``unknown_node``). A refusal that retrying cannot change
until an operator acts becomes ``BackendRefusedError``, raised to the caller and never
journalled: ACL denials (``NOPERM``, in scripts too), ``OOM`` under ``maxmemory``, WRONGTYPE
from our own keys, and a database number the server lacks (``/99``).

A reply is judged by what Redis said, also when a pipeline's command got it: redis-py puts
``Command # N (<the command>) of pipeline caused error:`` before it (``reply``).
"""

from __future__ import annotations

import re
from types import TracebackType

import redis.asyncio.cluster
import redis.asyncio.connection
import redis.cluster
import redis.connection
from redis import exceptions as rexc

from tta_dev_primitives.exceptions import BackendRefusedError
from tta_dev_primitives.stores._urls import redact_url, scrub

__all__ = [
    "BEFORE_ANY_CHANGE",
    "NOTHING_STORED",
    "REFUSED",
    "REFUSED_INSIDE",
    "REFUSED_REPLIES",
    "UNAVAILABLE",
    "UNAVAILABLE_INSIDE",
    "UNAVAILABLE_REPLIES",
    "SlotsMoved",
    "left_nothing",
    "refusal",
    "refused",
    "reply",
    "slot_moving",
    "unavailable",
    "unknown_node",
    "untouched",
]

#: The words the write scripts end a refusal with when they refused before changing anything
#: (``lua_common.check_layout``: the user's rights and the keys' types are checked first).
BEFORE_ANY_CHANGE = " (refused before any change)"
# How ``refusal`` ends a refusal that left nothing behind (``left_nothing`` reads it).
NOTHING_STORED = "nothing was stored"

# Errors after which Redis may well serve again (the hybrid falls back and probes).
UNAVAILABLE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.BusyLoadingError,
    rexc.ReadOnlyError,
    rexc.MasterDownError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.ClusterError,
    rexc.RedisClusterException,
    rexc.SlotNotCoveredError,
    rexc.MaxConnectionsError,
    # Scripts flushed again before redis-py's reload ran them (or under a pipeline): loaded
    # again by the next call or replay.
    rexc.NoScriptError,
    rexc.InvalidResponse,  # not a Redis on the port (an HTTP server, say)
    OSError,
    TimeoutError,
)
UNAVAILABLE_REPLIES = (
    "NOAUTH", "WRONGPASS", "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
    "MISCONF", "BUSY", "NOREPLICAS",
    # A master demoted (a cluster's CLUSTER FAILOVER [TAKEOVER], REPLICAOF) while a call waited
    # there, in the WAIT after a write: whether a replica has the write is unknown, so it is
    # journalled and replayed on the new master, as for a write whose reply was lost.
    "UNBLOCKED",
    # A script that reached a key of a slot being resharded on the other master (a memory's
    # value a page or sweep reads: every other key is declared, ``Layout.declared``). Redis
    # stopped it at that command; a write is journalled and replayed once the move ends (what
    # it changed before that is written again, as for a write whose reply was lost).
    "SCRIPT ATTEMPTED TO ACCESS A NON LOCAL KEY",
)  # fmt: skip
# The same within a reply (Redis names the script's command before it).
UNAVAILABLE_INSIDE = ("UNDECLARED KEYS WERE ACCESSED DURING REHASHING",)
# Refusals that retrying will not change until an operator acts (an ACL, maxmemory, a key of
# the wrong type): raised to the caller as BackendRefusedError, never journalled as an outage.
REFUSED = (rexc.NoPermissionError, rexc.OutOfMemoryError)
REFUSED_REPLIES = ("NOPERM", "OOM", "WRONGTYPE")
# The same refusals as they read inside a script's error (redis-py strips a reply's prefix).
REFUSED_INSIDE = (
    "CAN'T RUN THIS COMMAND", "CAN'T ACCESS", "NO PERMISSIONS", "NOPERM", "WRONGTYPE",
    "NOT ALLOWED WHEN USED MEMORY", "DB INDEX IS OUT OF RANGE",
)  # fmt: skip


# What redis-py puts before the error of a pipeline's command; the command's text (at most 100
# characters) may hold a key or a value, never judged as Redis's reply: the last such prefix
# within reach is redis-py's own, whatever a key holds.
_IN_PIPELINE = re.compile(r"Command # \d+ \(.{0,100}\) of pipeline caused error: ", re.S)


def reply(message: str) -> str:
    """A ``ResponseError``'s message as Redis sent it: without redis-py's pipeline prefix."""
    found = _IN_PIPELINE.match(message)
    return message[found.end() :] if found else message


def unavailable(message: str) -> bool:
    """True if a ``ResponseError``'s (scrubbed) message means Redis cannot serve it now."""
    upper = message.upper()
    return upper.startswith(UNAVAILABLE_REPLIES) or any(r in upper for r in UNAVAILABLE_INSIDE)


def full(message: str) -> bool:
    """True if a (scrubbed) refusal is Redis's for memory (maxmemory), by Redis's own words,
    not a word a key may hold (the default namespace's has "memory"). Such a refusal leaves
    nothing behind: Redis checks it at a script's first write, before anything changes."""
    upper = message.upper()
    return upper.startswith("OOM") or "NOT ALLOWED WHEN USED MEMORY" in upper


def untouched(message: str) -> bool:
    """True if a (scrubbed) refusal of a write left nothing behind: Redis's for memory
    (``full``), or one our scripts made before any change (``BEFORE_ANY_CHANGE``). Redis's own
    ACL or WRONGTYPE refusal inside a script may come after some of its writes."""
    return full(message) or BEFORE_ANY_CHANGE.strip().upper() in message.upper()


def refused(message: str) -> bool:
    """True if a ``ResponseError``'s (scrubbed) message is a refusal (see ``REFUSED``)."""
    upper = message.upper()
    return upper.startswith(REFUSED_REPLIES) or any(reply in upper for reply in REFUSED_INSIDE)


class SlotsMoved(rexc.ClusterError):
    """The slot map this client routes by lags the cluster's: a master answered MOVED for a
    Query Engine index's name, or says itself that it serves other slots than the map gives
    it. During a reshard the map lags by a slot or two at every moment: the map is read again
    and the call sent again (``slot_moving``); an outage only once the call's time is up."""


# redis-py's cluster routing: where it follows a redirection (MOVED, ASK) to a node.
_CLUSTER_ROUTING = frozenset(filter(None, (redis.asyncio.cluster.__file__, redis.cluster.__file__)))


def unknown_node(exc: BaseException) -> bool:
    """True if ``exc`` is redis-py's cluster client failing on a node its slot map lacks: an
    ``ASK`` to a master added since the map was read (it owns no slot yet, so no map names
    it) makes redis-py look the node up, find ``None`` and call a method on it, inside its
    routing. The cluster's slots are moving, as with ``TRYAGAIN``: an outage, not a garbled
    reply. Recognised by the ``AttributeError`` on ``None`` raised in redis-py's cluster module
    itself; one raised while reading a reply elsewhere stays what it is."""
    if not isinstance(exc, AttributeError) or exc.obj is not None:
        return False
    return _raised_in(exc.__traceback__, _CLUSTER_ROUTING)


# What Redis answers a command on a slot being resharded, that it runs once the move is done.
# (redis-py's cluster client gives up with "TTL exhausted" after 16 redirections and TRYAGAINs.)
_MOVING_REPLIES = ("TRYAGAIN", "MULTIPLE KEYS REQUEST DURING REHASHING", "ASK ", "TTL EXHAUSTED")
_MOVING_INSIDE = ("SCRIPT ATTEMPTED TO ACCESS A NON LOCAL KEY", "DURING REHASHING")


def slot_moving(exc: BaseException) -> bool:
    """True if ``exc`` says a slot the call needs is being resharded: ``TRYAGAIN`` (its keys
    are split between the two masters), an ``ASK`` not followed, redirections that did not
    settle, a script stopped at a key already moved, an ``ASK`` to a master the slot map
    lacks (``unknown_node``), or a map found lagging the masters' own word (``SlotsMoved``).
    A slot moves in milliseconds: the call is worth sending again, not an outage yet."""
    if isinstance(exc, rexc.TryAgainError | rexc.AskError | SlotsMoved) or unknown_node(exc):
        return True
    if not isinstance(exc, rexc.ResponseError | rexc.ClusterError):
        return False
    upper = reply(str(exc)).upper()
    return upper.startswith(_MOVING_REPLIES) or any(r in upper for r in _MOVING_INSIDE)


# redis-py's connections: where a new one says hello (``on_connect``: AUTH, HELLO, SELECT).
_CONNECTIONS = frozenset(
    filter(None, (redis.asyncio.connection.__file__, redis.connection.__file__))
)
_HANDSHAKE = frozenset({"on_connect", "on_connect_check_health"})


def not_redis(exc: BaseException) -> bool:
    """True if ``exc`` is redis-py failing to read what the server answered to a new
    connection's handshake (``AUTH``, ``HELLO``, ``SELECT``): a reply of a shape no Redis
    sends there (``$-1`` to ``HELLO``: an ``AttributeError`` on ``None``) means whatever
    listens on the port does not speak Redis, which is an outage ("Not Redis" in
    production.md), not a garbled reply to one command."""
    if not isinstance(exc, AttributeError | TypeError | KeyError | IndexError | ValueError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in _HANDSHAKE and code.co_filename in _CONNECTIONS:
            return True
        tb = tb.tb_next
    return False


def _raised_in(tb: TracebackType | None, files: frozenset[str]) -> bool:
    """True if the innermost frame of ``tb`` runs code of one of ``files``."""
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename in files


def refusal(exc: Exception, url: str) -> BackendRefusedError:
    """The error for a refusal no retry will change (see ``REFUSED``), naming the fix."""
    message = scrub(reply(str(exc)), url)
    if isinstance(exc, rexc.NoPermissionError):
        message = "NOPERM " + message
    elif isinstance(exc, rexc.OutOfMemoryError):
        message = "OOM " + message
    upper = message.upper()
    if "'WAIT' COMMAND" in upper:
        # WAIT rides with a write (``replication.ReplicaWait``): the master has it already.
        return BackendRefusedError(
            f"Redis at {redact_url(url)} refused: {message} (the Redis user lacks +wait, see "
            "the ACL in docs/production.md); the write reached the master, but no replica "
            "was asked to confirm it, so a failover may still lose it"
        )
    if full(message):
        hint = "Redis is full (maxmemory): free memory, raise maxmemory, or delete memories"
    elif "WRONGTYPE" in upper:
        hint = "a key of this namespace holds another type (delete it, or clear())"
    elif "DB INDEX" in upper:
        hint = "the URL's database number is past the server's 'databases' setting"
    else:
        hint = "the Redis user lacks a permission (see the ACL in docs/production.md)"
    if untouched(message) or "DB INDEX" in upper:
        outcome = NOTHING_STORED
    else:  # (Redis's own refusal inside a script, or of a read: the caller cannot tell)
        outcome = "if it was a write, it may be stored in part: fix this and write it again"
    return BackendRefusedError(f"Redis at {redact_url(url)} refused: {message} ({hint}); {outcome}")


def left_nothing(exc: BaseException) -> bool:
    """True if ``exc`` is a refusal (``refusal``) that left nothing behind."""
    return isinstance(exc, BackendRefusedError) and str(exc).endswith(NOTHING_STORED)
