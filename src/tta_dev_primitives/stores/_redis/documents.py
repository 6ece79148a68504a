"""The search document a memory gets in the Query Engine, and the query text that finds it.

A memory's ``f:<key>`` hash (written by the PUT script) holds ``t``, its analysed terms each
repeated as often as they occur; ``w``, its stop words written as names ("Will", "The Who":
``STOP_MARK`` terms), repeated alike, as a TAG, apart from ``t`` so that the engine's own BM25
leaves them out of the document's length as in-process BM25 does (it counts every token of
every TEXT field, and no TAG); ``s``, a tag per scope it belongs to and per field value it
holds (its facets, ``search._facets``: 16 hex digits each, hashed apart from scope tags); ``q``,
its write sequence; ``n``, its length in terms; ``e``, its first vector (further ones in
``fv:<i>:<key>``). Terms that are not plain ``[a-z0-9]`` are hex-encoded, so the engine's
tokenizer never splits them; a term longer than the engine matches (``MAX_TOKEN``, encoded) is
kept as a digest, in documents and queries alike, with its first ``MAX_TOKEN`` characters beside
it in documents for an unfinished word's prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from tta_dev_primitives.search._analyzer import STOP_MARK
from tta_dev_primitives.search._facets import FACET_MARK, is_facet
from tta_dev_primitives.search._scopes import scope_prefixes
from tta_dev_primitives.search._term_index import LEN_MAX, TF_CAP

__all__ = [
    "MAX_TF",
    "MAX_TOKEN",
    "NAMES_FIELD",
    "NAME_LEVELS",
    "doc_length",
    "encode_term",
    "encoded_forms",
    "is_name",
    "level_tags",
    "names_text",
    "prefix_tokens",
    "scope_filter",
    "scope_tag",
    "scope_tags",
    "terms_text",
    "vector_field",
]

#: How often one term is repeated in ``t``: BM25 has long saturated by then (in-process
#: counts a term's frequency up to the same cap).
MAX_TF: Final = TF_CAP
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


#: The longest token the engine matches (RediSearch 2.10: a longer one is stored but never
#: found, so a 64-character identifier or a 65-byte word, hex-encoded, was invisible to it).
MAX_TOKEN: Final = 128


def encode_term(term: str) -> str:
    """A term as the engine's tokenizer keeps it whole: plain ``[a-z0-9]`` as is, else hex;
    past ``MAX_TOKEN`` a 34-character digest (``_z`` is no hex encoding's start)."""
    return encoded_forms(term)[0]


def encoded_forms(term: str) -> tuple[str, ...]:
    """The tokens ``t`` holds for ``term``: ``encode_term``'s, and for a digest also the first
    ``MAX_TOKEN`` characters of its encoding, which an unfinished word's prefix query still
    matches (a completion, as in-process)."""
    encoded = term if term and _PLAIN.issuperset(term) else "_" + term.encode().hex()
    if len(encoded) <= MAX_TOKEN:
        return (encoded,)
    return "_z" + hashlib.blake2b(term.encode(), digest_size=16).hexdigest(), encoded[:MAX_TOKEN]


def prefix_tokens(prefix: str) -> list[str]:
    """The engine's prefix queries that match every term starting with ``prefix``: a plain
    prefix may also begin an encoded term (``caf`` of ``café``)."""
    hexed = "_" + prefix.encode().hex() + "*"
    return [prefix + "*", hexed] if _PLAIN.issuperset(prefix) else [hexed]


def is_name(term: str) -> bool:
    """True for a stop word written as a name (``STOP_MARK``): kept in ``w``, not ``t``."""
    return term.startswith(STOP_MARK)


def terms_text(terms: Mapping[str, int]) -> str:
    """The ``t`` field: each term's tokens (``encoded_forms``), as often as it occurs (up to
    ``MAX_TF``); not facets (``s``) nor names (``w``)."""
    return " ".join(
        " ".join([form] * min(tf, MAX_TF))
        for t, tf in terms.items()
        if not is_facet(t) and not is_name(t)
        for form in encoded_forms(t)
    )


#: How often a memory holds a name, at least, for each of its level tags (``level_tags``).
NAME_LEVELS: Final = (2, 4, 8, 16)


def level_tags(token: str, tf: int = TF_CAP) -> list[str]:
    """The tags of a name's ``token`` that say it occurs at least 2, 4, 8, 16 times, those up
    to ``tf`` (no encoded term has a ``z`` past its second character: these are no term's)."""
    return [f"{token}z{level}" for level in NAME_LEVELS if level <= tf]


def names_text(terms: Mapping[str, int]) -> str:
    """The ``w`` field: each name's token (``encode_term``: a name is never a prefix, so a long
    one needs only its digest), as often as it occurs (up to ``MAX_TF``), and its level tags,
    apart by spaces (the TAG's separator). The engine indexes each tag once (a candidate's
    frequency is read from the field as written), so it finds those holding a name often by
    their level tags (``keywords.name_levels``)."""
    out = []
    for term, tf in terms.items():
        if is_name(term):
            token = encode_term(term)
            out += [token] * min(tf, MAX_TF) + level_tags(token, tf)
    return " ".join(out)


def doc_length(terms: Mapping[str, int]) -> int:
    """The ``n`` field: the memory's length as in-process BM25 counts it (``TermIndex.add``:
    stop words and facets left out, capped at ``LEN_MAX``), so both normalise by the same
    length."""
    length = sum(tf for t, tf in terms.items() if not t.startswith((STOP_MARK, FACET_MARK)))
    return min(length, LEN_MAX)


def scope_tag(scope: str) -> str:
    """The TAG of one scope: 16 hex digits of its hash (no escaping, any length)."""
    return hashlib.blake2b(scope.encode(), digest_size=8).hexdigest()


def scope_tags(key: str, terms: Mapping[str, int] | None = None) -> str:
    """The ``s`` field: the tags of every scope ``key`` belongs to, itself included, and of
    the facets among its ``terms`` (a facet's tag is its hex digits)."""
    tags = [scope_tag(s) for s in [*scope_prefixes(key), key]]
    if terms:
        tags += [t[len(FACET_MARK) :] for t in terms if is_facet(t)]
    return ",".join(tags)


def scope_filter(
    scope: str | None, sep: str, wanted: tuple[str, ...] = (), weight: float | None = None
) -> str:
    """The query's clauses for a scope and a filter's facets (every one), each after ``sep``;
    "" for neither. With ``weight``, each clause weighs that much in the engine's score (a
    lone tag takes no weight there; a union of it twice does, and matches alike)."""
    tags = ([] if scope is None else [scope_tag(scope)]) + [t[len(FACET_MARK) :] for t in wanted]
    if weight is None:
        return "".join(f"{sep}@s:{{{tag}}}" for tag in tags)
    return "".join(f"{sep}@s:{{{tag}|{tag}}}=>{{$weight:{weight}}}" for tag in tags)


#: The ``w`` field in the index's schema: a TAG of the names' tokens, apart by spaces (it
#: never counts in a document's length).
NAMES_FIELD: Final = ("w", "TAG", "SEPARATOR", " ")


def vector_field(dims: int) -> list[Any]:
    return ["e", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", dims, "DISTANCE_METRIC", "COSINE"]
