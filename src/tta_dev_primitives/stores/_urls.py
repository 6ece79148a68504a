"""Redis URLs: validation at construction and redaction everywhere they are shown.

Redaction is deliberately over-eager, so that no part of a password is ever shown, whatever
characters it holds:

- the authority runs to the first ``/``, ``?`` or ``#``, and the user info to its last ``@``
  (a password may hold ``@``, ``:``, ``%`` or text such as ``;password=``: all of it is user
  info); a bare ``redis://secret@host`` is read as a password;
- a ``password=`` query argument (which redis-py honours; ``sentinel_password=`` for Redis
  Sentinel), looked for only after the authority, hides everything after it, to the end of
  the URL (a raw ``&``, ``#`` or ``@`` in it could otherwise show its tail);
- an ``@`` after the authority means a raw ``/``, ``?`` or ``#`` in the user info, or an ``@``
  in the path or query: where a password ends is unknown, and everything after the scheme is
  hidden.

``check_redis_url`` refuses that last case (percent-encode the password) with a message naming
no part of the URL, and validates the redacted form, so that its errors only ever quote the
redacted URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from tta_dev_primitives.exceptions import InvalidArgumentError

__all__ = ["SENTINEL_SCHEME", "SentinelTarget", "check_redis_url", "cluster_nodes", "redact_url",
           "scrub", "sentinel_target"]  # fmt: skip

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_SECRET = re.compile(r"(?i)[?&;](?:sentinel_|ssl_)?password=")
#: Sentinel's own port, when a sentinel's address names none.
SENTINEL_PORT = 26379
#: Redis's port, when a cluster node's address in a list of them names none.
REDIS_PORT = 6379
#: What a ``redis+sentinel://`` URL's query may set: how to authenticate to the sentinels.
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
HIDDEN = "***"
_PLACEHOLDER = "x"  # stands in for a password while the URL's shape is checked


class _Parts(NamedTuple):
    scheme: str  # "redis://" (or "" if there is none)
    userinfo: str | None  # the authority up to its last "@"; None if it has none
    rest: str  # after the user info, up to the query password (if any)
    query_secret: str | None  # everything after a "password=" past the authority, or None
    ambiguous: bool  # an "@" past the authority: where a password ends is unknown


_AUTHORITY_END = re.compile(r"[/?#]")


def _split(url: str) -> _Parts:
    match = _SCHEME.match(url)
    start = match.end() if match else 0
    found = _AUTHORITY_END.search(url, start)
    end = len(url) if found is None else found.start()
    ambiguous = "@" in url[end:]
    # Ambiguous: the user info is read to the last "@" only to hide it (the URL is refused).
    at = url.rfind("@", start) if ambiguous else url.rfind("@", start, end)
    head, query_secret = url, None
    secret = _QUERY_SECRET.search(url, max(end, at + 1))
    if secret is not None:
        head, query_secret = url[: secret.end()], url[secret.end() :]
    if at == -1:
        return _Parts(url[:start], None, head[start:], query_secret, ambiguous)
    return _Parts(url[:start], head[start:at], head[at + 1 :], query_secret, ambiguous)


def _user_and_password(userinfo: str) -> tuple[str | None, str]:
    """``(user or None, password)``: ``redis://secret@host`` is a password in redis-py."""
    user, sep, password = userinfo.partition(":")
    return (user, password) if sep else (None, userinfo)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names are kept); safe on garbage."""
    if not isinstance(url, str):
        return f"<{type(url).__name__}, not a URL>"
    parts = _split(url)
    if parts.ambiguous:
        return parts.scheme + HIDDEN
    shown = parts.rest
    if parts.userinfo is not None:
        user, _ = _user_and_password(parts.userinfo)
        shown = ("" if user is None else user + ":") + HIDDEN + "@" + shown
    return parts.scheme + shown + ("" if parts.query_secret is None else HIDDEN)


def _secrets(url: str) -> set[str]:
    """Every form of every password in the URL, as it may show up in an error message."""
    parts = _split(url)
    found: set[str] = set()
    if parts.userinfo is not None:
        found.add(_user_and_password(parts.userinfo)[1])
    if parts.query_secret is not None:
        found.add(parts.query_secret)
        found.add(re.split(r"[&#;]", parts.query_secret, maxsplit=1)[0])  # what redis-py sends
    if parts.ambiguous:  # where the password ends is unknown: all of it may be secret
        found.add(url[len(parts.scheme) :])
    found |= {unquote(secret) for secret in found}
    found.discard("")
    return found


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (if any, in any form) replaced by ``***``."""
    if not isinstance(url, str):
        return text
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def _invalid(url: str) -> Callable[[str], InvalidArgumentError]:
    """The error for a problem with ``url``: it quotes the URL redacted, and the problem with the
    URL's passwords scrubbed."""
    shown = redact_url(url)

    def invalid(problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"invalid redis_url {shown!r}: {scrub(problem, url)}")

    return invalid


def check_redis_url(url: object) -> str:
    """Validate a Redis URL's shape; ``InvalidArgumentError`` (a ``ValueError``) naming the problem.

    Checks run on the URL with its passwords replaced by a placeholder, so a message can only
    quote what ``redact_url`` shows.
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(
            "redis_url must be a non-empty str such as 'redis://localhost:6379/0'"
        )
    invalid = _invalid(url)
    # redis-py accepts the scheme in lower case only.
    if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
        raise invalid(f"scheme must be one of {', '.join(f'{s}://' for s in SCHEMES)}")
    parts = _split(url)
    if parts.ambiguous:
        raise invalid("an '@' follows the host, so a user name or password holds a raw '/', "
                      "'?' or '#' (or the path or query an '@'); percent-encode them "
                      "(%2F, %3F, %23, %40)")  # fmt: skip
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        _sentinel_target(url, invalid)
        return url
    first, _ = _cluster_nodes(url, invalid)
    parts = _split(first)  # a list of cluster nodes: the rest is checked with the first
    safe = parts.scheme
    if parts.userinfo is not None:
        user, _ = _user_and_password(parts.userinfo)
        safe += ("" if user is None else user + ":") + _PLACEHOLDER + "@"
    safe += parts.rest
    if parts.query_secret is not None:  # redis-py's password ends at the first '&', '#' or ';'
        end = re.search(r"[&#;]", parts.query_secret)
        safe += _PLACEHOLDER + ("" if end is None else parts.query_secret[end.start() :])
    try:
        split = urlsplit(safe)
        port = split.port
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if split.scheme == "unix":
        if not split.path:
            raise invalid("a unix:// URL needs a socket path")
    elif not split.hostname:
        raise invalid("no host")
    if port == 0:
        raise invalid("port 0")
    db = split.path.strip("/")
    if split.scheme != "unix" and db and not db.isdigit():
        raise invalid(f"database must be a number, got {db!r}")
    if split.query:
        from redis.connection import parse_url  # only for URLs with options: keeps import cheap

        try:
            parse_url(safe)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise invalid(str(exc)) from None
        unknown = _unknown_options(split.query, split.scheme)
        if unknown:
            # redis-py passes any option on to its connection class, which then raised a
            # TypeError at the first call, and every later call looked like a garbled reply
            # (review R19). Not named after a query password: what follows its '&' may be
            # the rest of it.
            named = "" if parts.query_secret is not None else f" {unknown[0]!r}"
            raise invalid(f"no Redis connection takes the option{named}")
    return url


def _unknown_options(query: str, scheme: str) -> list[str]:
    """The names in ``query`` that no connection of ``scheme`` takes (redis-py's own
    parameters: its pool's ``max_connections`` and its connection classes' arguments)."""
    import inspect

    from redis.asyncio import connection

    classes: tuple[Callable[..., object], ...] = {
        "unix": (connection.UnixDomainSocketConnection,),
        "rediss": (connection.SSLConnection, connection.Connection),
    }.get(scheme, (connection.Connection,))
    from redis.connection import URL_QUERY_ARGUMENT_PARSERS

    # A URL gives each option as a str: redis-py converts the values of its parsers' options
    # only, so an option taking an object (``retry``, ``credential_provider``...) got a str and
    # every call raised a bare AttributeError or TypeError (review R21). Such options are
    # refused with the unknown ones; ``decode_responses`` (a bool) the memory sets itself.
    known = {"max_connections", "decode_responses"}
    every: list[Callable[..., object]] = [connection.AbstractConnection.__init__, *classes]
    for cls in every:
        for name, parameter in inspect.signature(cls).parameters.items():
            if name in URL_QUERY_ARGUMENT_PARSERS or _takes_str(parameter.annotation):
                known.add(name)
    known -= {"self", "args", "kwargs"}
    options = parse_qsl(query, keep_blank_values=True)
    unknown = [name for name, _ in options if name not in known]
    for name, value in options:  # an unknown codec raised LookupError at every call
        if name == "encoding" and not _codec(value):
            unknown.append(name)
    return unknown


def _takes_str(annotation: object) -> bool:
    """Whether a parameter annotated ``annotation`` takes a str (``str``, ``str | None``,
    ``Optional[str]``, ``Union[str, ...]``...)."""
    import typing

    if annotation is str:
        return True
    return any(arg is str for arg in typing.get_args(annotation))


def _codec(name: str) -> bool:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


class SentinelTarget(NamedTuple):
    """What a ``redis+sentinel://`` URL names: the sentinels to ask, the primary's service name
    and database, and the credentials for Redis and for the sentinels."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_username: str | None
    sentinel_password: str | None


def sentinel_target(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL that ``check_redis_url`` accepted."""
    return _sentinel_target(url, _invalid(url))


def _sentinel_target(url: str, invalid: Callable[[str], InvalidArgumentError]) -> SentinelTarget:
    """``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db]``, with
    ``sentinel_username``/``sentinel_password`` in the query for sentinels that require a
    password. A problem's message names no part of the user info or of the query's values."""
    rest = url[len(SENTINEL_SCHEME) + 3 :]
    rest, _, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, secret = _user_and_password(userinfo)
        username, password = unquote(user or "") or None, unquote(secret)
    sentinels = [_sentinel_address(address, invalid) for address in hosts.split(",")]
    service, _, db = path.partition("/")
    service = unquote(service)
    if not service:
        raise invalid("no service name: write the primary's name as Sentinel knows it after "
                      "the sentinels, as in 'redis+sentinel://host:26379/mymaster'")  # fmt: skip
    db = db.strip("/")
    if db and not db.isdigit():
        raise invalid(f"database must be a number, got {db!r}")
    options: dict[str, str] = {}
    for pair in filter(None, re.split(r"[&;]", query)):
        name, _, value = pair.partition("=")
        if name not in _SENTINEL_OPTIONS:
            shown = name if name.isidentifier() else "an option"
            raise invalid(f"{shown} is not an option of a redis+sentinel:// URL (only "
                          f"{' and '.join(_SENTINEL_OPTIONS)})")  # fmt: skip
        options[name] = unquote(value)
    if fragment:
        raise invalid("a redis+sentinel:// URL takes no '#' part")
    return SentinelTarget(
        sentinels, service, int(db or 0), username, password,
        options.get("sentinel_username") or None, options.get("sentinel_password") or None,
    )  # fmt: skip


def cluster_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """For a ``redis://`` or ``rediss://`` URL naming several nodes of one Redis Cluster
    (``host[:port],host[:port]...``, as ``check_redis_url`` accepted it): the same URL naming
    only the first, and every node's (host, port); for any other URL: itself and ``[]``."""
    return _cluster_nodes(url, _invalid(url))


def _cluster_nodes(
    url: str, invalid: Callable[[str], InvalidArgumentError]
) -> tuple[str, list[tuple[str, int]]]:
    if not url.startswith(("redis://", "rediss://")):
        return url, []
    parts = _split(url)
    found = _AUTHORITY_END.search(parts.rest)
    end = len(parts.rest) if found is None else found.start()
    hosts = parts.rest[:end]
    if "," not in hosts:
        return url, []
    addresses = hosts.split(",")
    nodes = [_address(a, invalid, REDIS_PORT, "a cluster node") for a in addresses]
    head = parts.scheme + ("" if parts.userinfo is None else parts.userinfo + "@")
    tail = parts.rest[end:] + ("" if parts.query_secret is None else parts.query_secret)
    return head + addresses[0] + tail, nodes


def _sentinel_address(
    address: str, invalid: Callable[[str], InvalidArgumentError]
) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[ipv6]:port`` of one sentinel (port 26379 by default)."""
    return _address(address, invalid, SENTINEL_PORT, "a sentinel")


def _address(
    address: str, invalid: Callable[[str], InvalidArgumentError], default: int, what: str
) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[ipv6]:port`` of ``what`` (port ``default`` if none)."""
    if address.startswith("["):
        host, _, tail = address[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ("" if not tail else None)
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, ""
    if not host or port is None:
        raise invalid(f"{what}'s address must be host[:port], got {address!r}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise invalid(f"{what}'s port must be 1-65535, got {port!r}")
    return host, int(port) if port else default
