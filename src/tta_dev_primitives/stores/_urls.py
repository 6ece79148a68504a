"""Redis URLs: validation at construction and redaction everywhere they are shown.

Redaction is deliberately over-eager: the user info runs to the *last* ``@`` (a password may
contain ``@``, ``/`` or ``:``), a bare ``redis://secret@host`` is read as a password, and a
``password=`` query argument (which redis-py honours) is hidden too.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["check_redis_url", "redact_url", "scrub"]

SCHEMES = ("redis", "rediss", "unix")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_QUERY_SECRET = re.compile(r"(?i)([?&;]password=)([^&#;]*)")
HIDDEN = "***"


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """``(scheme, userinfo, rest)`` if the URL has user info (up to its last ``@``)."""
    match = _SCHEME.match(url)
    start = match.end() if match else 0
    at = url.rfind("@", start)
    if at == -1:
        return None
    return url[:start], url[start:at], url[at + 1 :]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names are kept); safe on garbage."""
    if not isinstance(url, str):
        return f"<{type(url).__name__}, not a URL>"
    parts = _split_userinfo(url)
    if parts is not None:
        scheme, userinfo, rest = parts
        user, sep, _ = userinfo.partition(":")
        # "redis://pw@host" is a password too in redis-py's reading (sent to AUTH).
        url = f"{scheme}{user}:{HIDDEN}@{rest}" if sep else f"{scheme}{HIDDEN}@{rest}"
    return _QUERY_SECRET.sub(lambda m: m.group(1) + HIDDEN, url)


def _secrets(url: str) -> set[str]:
    """Every form of every password in the URL, as it may show up in an error message."""
    found: set[str] = set()
    parts = _split_userinfo(url)
    if parts is not None:
        userinfo = parts[1]
        user, sep, password = userinfo.partition(":")
        found.add(password if sep else user)
    found.update(m.group(2) for m in _QUERY_SECRET.finditer(url))
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
    """Validate a Redis URL's shape; ``ValueError`` naming the problem (password redacted)."""
    if not isinstance(url, str) or not url:
        raise ValueError("redis_url must be a non-empty str such as 'redis://localhost:6379/0'")
    shown = redact_url(url)

    def invalid(problem: str) -> ValueError:
        return ValueError(f"invalid redis_url {shown!r}: {scrub(problem, url)}")

    # redis-py accepts the scheme in lower case only.
    if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
        raise invalid(f"scheme must be one of {', '.join(f'{s}://' for s in SCHEMES)}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if parts.scheme == "unix":
        if not parts.path:
            raise invalid("a unix:// URL needs a socket path")
    elif not parts.hostname:
        raise invalid("no host")
    if port == 0:
        raise invalid("port 0")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise invalid(f"database must be a number, got {db!r}")
    if parts.query:
        from redis.connection import parse_url  # only for URLs with options: keeps import cheap

        try:
            parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise invalid(str(exc)) from None
    return url
