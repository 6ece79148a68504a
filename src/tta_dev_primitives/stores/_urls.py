"""Redis URLs: validation at construction and redaction everywhere they are shown.

Redaction is deliberately over-eager, so that no part of a password is ever shown, whatever
characters it holds:

- the authority runs to the first ``/``, ``?`` or ``#``, and the user info to its last ``@``
  (a password may hold ``@``, ``:``, ``%`` or text such as ``;password=``: all of it is user
  info); a bare ``redis://secret@host`` is read as a password;
- a ``password=`` query argument (which redis-py honours), looked for only after the authority,
  hides everything after it, to the end of the URL (a raw ``&``, ``#`` or ``@`` in it could
  otherwise show its tail);
- an ``@`` after the authority means a raw ``/``, ``?`` or ``#`` in the user info, or an ``@``
  in the path or query: where a password ends is unknown, and everything after the scheme is
  hidden.

``check_redis_url`` refuses that last case (percent-encode the password) with a message naming
no part of the URL, and validates the redacted form, so that its errors only ever quote the
redacted URL.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from tta_dev_primitives.exceptions import InvalidArgumentError

__all__ = ["check_redis_url", "redact_url", "scrub"]

SCHEMES = ("redis", "rediss", "unix")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_SECRET = re.compile(r"(?i)[?&;]password=")
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


def check_redis_url(url: object) -> str:
    """Validate a Redis URL's shape; ``InvalidArgumentError`` (a ``ValueError``) naming the problem.

    Checks run on the URL with its passwords replaced by a placeholder, so a message can only
    quote what ``redact_url`` shows.
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(
            "redis_url must be a non-empty str such as 'redis://localhost:6379/0'"
        )
    shown = redact_url(url)

    def invalid(problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"invalid redis_url {shown!r}: {scrub(problem, url)}")

    # redis-py accepts the scheme in lower case only.
    if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
        raise invalid(f"scheme must be one of {', '.join(f'{s}://' for s in SCHEMES)}")
    parts = _split(url)
    if parts.ambiguous:
        raise invalid("an '@' follows the host, so a user name or password holds a raw '/', "
                      "'?' or '#' (or the path or query an '@'); percent-encode them "
                      "(%2F, %3F, %23, %40)")  # fmt: skip
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
    return url
