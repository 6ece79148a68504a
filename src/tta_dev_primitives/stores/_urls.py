"""Redis URLs: validation at construction and redaction everywhere they are shown."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = ["check_redis_url", "redact_url", "scrub"]

SCHEMES = ("redis", "rediss", "unix")
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/]*)@")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names are kept); safe on garbage."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    userinfo = match.group("userinfo")
    user, sep, _ = userinfo.partition(":")
    # "redis://:pw@host" and "redis://user:pw@host" hide the password; "redis://pw@host" is a
    # password too in redis-py's reading (a bare user name with no password is sent as one).
    hidden = f"{user}:***" if sep else "***"
    return f"{match.group('scheme')}{hidden}@{url[match.end() :]}"


def _password(parts: SplitResult) -> str | None:
    if parts.password:
        return parts.password
    if parts.username and not parts.password and "@" in parts.netloc:
        return parts.username
    return None


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced by ``***``."""
    try:
        secret = _password(urlsplit(url))
    except ValueError:
        secret = None
    if not secret:
        return text
    for form in {secret, unquote(secret)}:
        text = text.replace(form, "***")
    return text


def check_redis_url(url: object) -> str:
    """Validate a Redis URL's shape; ``ValueError`` naming the problem (password redacted)."""
    if not isinstance(url, str) or not url:
        raise ValueError("redis_url must be a non-empty str such as 'redis://localhost:6379/0'")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid redis_url {shown!r}: {scrub(str(exc), url)}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"invalid redis_url {shown!r}: scheme must be one of {', '.join(SCHEMES)}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"invalid redis_url {shown!r}: a unix:// URL needs a socket path")
    elif not parts.hostname:
        raise ValueError(f"invalid redis_url {shown!r}: no host")
    if port == 0:
        raise ValueError(f"invalid redis_url {shown!r}: port 0")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"invalid redis_url {shown!r}: database must be a number, got {db!r}")
    return url
