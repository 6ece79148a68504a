"""Scopes: a key belongs to every prefix of it that ends just before a ``:``."""

from __future__ import annotations

__all__ = ["first_segment", "in_scope", "normalize_scope", "scope_prefixes"]


def scope_prefixes(key: str) -> list[str]:
    """The scopes a key belongs to: every prefix that ends just before a ``:``.

    ``"u1:s1:ab"`` belongs to ``"u1"`` and ``"u1:s1"`` (and, as a key, to scope ``"u1:s1:ab"``),
    never to ``"u"`` or ``"u1:s"``: scopes match whole segments, so ``u1`` never sees ``u10``.
    """
    prefixes = []
    i = key.find(":", 1)
    while i != -1:
        prefixes.append(key[:i])
        i = key.find(":", i + 1)
    return prefixes


def in_scope(key: str, scope: str | None) -> bool:
    """True if ``key`` belongs to ``scope`` (None: every key): whole segments, or the key itself."""
    return scope is None or key == scope or key.startswith(scope + ":")


def normalize_scope(scope: str) -> str:
    """``"u1:s1:"`` and ``"u1:s1"`` name the same scope: one trailing ``:`` is dropped.

    Applied once, where a scope comes in (``_checks.check_scope``), never to a scope already
    normalized: it is not idempotent. ``"u1::"`` is scope ``"u1:"`` (keys ``u1:`` and
    ``u1::...``); normalized again it would become ``"u1"`` and take in every key of ``u1``.
    So everything below the public methods (the search indexes, the stores, the Redis listing
    and forget) takes a normalized scope as it is and matches it with ``in_scope``.
    """
    return scope[:-1] if scope.endswith(":") and len(scope) > 1 else scope


def first_segment(key: str) -> str:
    """The first scope of a key or scope (up to its first ``:``), or all of it if it has none.

    Every key in scope ``"u1"`` or ``"u1:s1"`` has first segment ``"u1"``: a replica holding one
    first segment holds every memory any scope inside it can match.
    """
    at = key.find(":", 1)
    return key if at == -1 else key[:at]
