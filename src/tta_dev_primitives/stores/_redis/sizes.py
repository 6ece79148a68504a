"""Large writes: the time a call is given to send its bytes, and a write Redis closed the
connection on for its size told apart from an outage.

A call's timeout measures the server's answer (``deadline``). A write of many bytes also needs
the time to send them, so it gets a second more per MiB it sends (``budget``): an 8 MiB
memory crosses an 8 Mbit/s link in time.

Redis closes the connection of a client whose request passes ``client-query-buffer-limit``
(a proxy may reset large requests too). Journalled as an outage, such a write failed on every
replay, and every later write of the process waited behind it in the journal while each call
returned normally. So a write of a MiB or more whose connection the server closed
(``closed_by_server``) is checked: if the server that holds its key runs a write script at once
(``TAKES_WRITES``: not stopped, paused, read-only or gone), the write is sent once more (an
idle connection reset, a restart in between), and if its connection is closed again it was
refused for its size: the caller is told (``refused_for_size``, a ``BackendError``; a replay
keeps it as a dead letter). A timeout is never taken for that: a stalled server may still run
a request it received whole, so a write that timed out is journalled, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from redis import exceptions as rexc

from tta_dev_primitives.exceptions import BackendError

__all__ = [
    "PROBE_FROM",
    "SEND_RATE",
    "TAKES_WRITES",
    "budget",
    "closed_by_server",
    "refused_for_size",
    "size_of",
]

#: Bytes a second the slowest link is given to send a write: ``budget`` adds ``n / SEND_RATE``.
SEND_RATE: Final = 1 << 20
#: Writes this large or larger are checked when their connection is closed under them. Redis
#: refuses nothing smaller for its size (the least ``client-query-buffer-limit`` is 1 MiB).
PROBE_FROM: Final = 1 << 20
#: A script that writes nothing but is declared as one that may (a shebang without
#: ``no-writes``): Redis runs it only where a write would run now, on the master of its key,
#: not paused (``CLIENT PAUSE WRITE``, ``FAILOVER``), not read-only.
TAKES_WRITES: Final = "#!lua\nreturn 1\n"

#: Connection errors a large request's size cannot cause: a login refused, a server loading
#: or full of clients, the client's own pool full.
_NOT_SIZE = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.BusyLoadingError,
    rexc.MaxClientsReachedError,
    rexc.MaxConnectionsError,
)


def budget(timeout: float, sending: int) -> float:
    """The time a call that sends ``sending`` bytes is given: the timeout plus their sending."""
    return timeout + sending / SEND_RATE


def size_of(args: Iterable[Any]) -> int:
    """The bytes of a call's string arguments (what dominates a write's request)."""
    return sum(len(arg) for arg in args if isinstance(arg, bytes | str))


def closed_by_server(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection was closed or reset under the request, which a
    request over the server's limit causes; never a timeout (see the module)."""
    if isinstance(exc, _NOT_SIZE):
        return False
    return isinstance(exc, rexc.ConnectionError | ConnectionResetError | BrokenPipeError)


def refused_for_size(where: str, sending: int, message: str) -> BackendError:
    """The error for a large write whose connection the server closed while it takes others."""
    return BackendError(
        f"Redis at {where} closed the connection on this write of "
        f"{sending / (1 << 20):.1f} MiB while it takes other writes ({message}): it is not "
        "stored. Requests this large are refused on the way: client-query-buffer-limit (or "
        "proto-max-bulk-len) below its size, or a proxy's request limit. Store less in one "
        "memory, or raise the limit"
    )
