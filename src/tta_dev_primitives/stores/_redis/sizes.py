"""Large writes: the time a call is given to send its bytes, and a write refused for its size
told apart from an outage.

A call's timeout measures the server's answer (``deadline``). A write of many bytes also needs
the time to send them, so it gets a second more per MiB it sends (``budget``): an 8 MiB
memory crosses an 8 Mbit/s link in time. A write of a MiB or more that still fails in transit
(its connection reset or timed out) while the server answers a ``PING`` was refused for its
size, not lost to an outage: Redis closes a client whose request passes
``client-query-buffer-limit``, a proxy may reset large requests, a slower link times them out.
Journalled as an outage, such a write would fail on every replay, and every later write of the
process would wait behind it in the journal. So the caller is told (``refused_for_size``, a
``BackendError``), and a replay keeps it as a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from redis import exceptions as rexc

from tta_dev_primitives.exceptions import BackendError

__all__ = ["PROBE_FROM", "SEND_RATE", "budget", "in_transit", "refused_for_size", "size_of"]

#: Bytes a second the slowest link is given to send a write: ``budget`` adds ``n / SEND_RATE``.
SEND_RATE: Final = 1 << 20
#: Writes this large or larger are checked with a ``PING`` when they fail in transit. Redis
#: refuses nothing smaller for its size (the least ``client-query-buffer-limit`` is 1 MiB).
PROBE_FROM: Final = 1 << 20

#: Failures in transit that a PING can tell apart: not a refusal, a login, or a missing replica.
_NOT_TRANSIT = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.BusyLoadingError,
    rexc.MaxConnectionsError,
)


class NotReplicated(rexc.TimeoutError):
    """``WAIT 1`` answered that no replica has the write yet: the server answered, so a write
    that fails so is an outage of the replica, never refused for its size."""


def budget(timeout: float, sending: int) -> float:
    """The time a call that sends ``sending`` bytes is given: the timeout plus their sending."""
    return timeout + sending / SEND_RATE


def size_of(args: Iterable[Any]) -> int:
    """The bytes of a call's string arguments (what dominates a write's request)."""
    return sum(len(arg) for arg in args if isinstance(arg, bytes | str))


def in_transit(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the request's transport: a reset, a closed connection or
    a timeout, not something the server answered."""
    if isinstance(exc, (NotReplicated, *_NOT_TRANSIT)):
        return False
    return isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | TimeoutError | OSError)


def refused_for_size(where: str, sending: int, seconds: float, message: str) -> BackendError:
    """The error for a write the server, answering, did not take (see the module)."""
    return BackendError(
        f"Redis at {where} answers, but did not take this write of {sending / (1 << 20):.1f} "
        f"MiB within {seconds:.1f}s ({message}): it is not stored. Something between holds "
        "requests this large back: client-query-buffer-limit (or proto-max-bulk-len) below its "
        "size, a proxy's request limit, or a link slower than 1 MiB/s. Store less in one "
        "memory, or raise the limit"
    )
