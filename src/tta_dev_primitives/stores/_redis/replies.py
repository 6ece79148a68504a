"""Reading the Query Engine's replies: ``FT.SEARCH`` and ``FT.AGGREGATE``, RESP2 or RESP3."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tta_dev_primitives.stores._redis.layout import Layout

__all__ = ["ID", "aggregate_fields", "aggregate_rows", "as_dict", "rows", "seq", "text", "total"]


#: The field ``rows`` puts a document's name under (no document field starts with ``__``).
ID = "__id"


def text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def as_dict(reply: Any) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat list of pairs, with text keys."""
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    items = list(reply)
    return {text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _text_fields(fields: Any) -> dict[str, str]:
    """A document's returned fields as text: a RESP3 map, or a flat list of pairs (RESP2, and
    RESP3's ``extra_attributes`` from a script)."""
    if isinstance(fields, dict):
        return dict(zip(map(text, fields), map(text, fields.values()), strict=True))
    return dict(zip(map(text, fields[::2]), map(text, fields[1::2]), strict=True))


def _key_of(doc_id: str) -> str:
    """The memory key of a document id (see ``layout``)."""
    return Layout.key_of_document(doc_id)


def rows(reply: Any, *, scores: bool) -> list[tuple[str, float, dict[str, str]]]:
    """``(key, score, fields)`` of an FT.SEARCH reply, RESP3 or RESP2; ``fields[ID]`` is the
    document's own name."""
    rows = []
    if isinstance(reply, dict) or (
        isinstance(reply, list) and reply and isinstance(reply[0], dict)
    ):
        body = as_dict(reply)
        for result in body.get("results", []):
            item = as_dict(result)
            fields = item.get("extra_attributes") or {}
            score = float(item.get("score", 0.0) or 0.0)
            doc_id = text(item["id"])
            found = {ID: doc_id} | _text_fields(fields)
            rows.append((_key_of(doc_id), score, found))
        return rows
    items = list(reply)[1:]
    step = 3 if scores else 2
    for i in range(0, len(items) - step + 1, step):
        doc_id = text(items[i])
        score = float(items[i + 1]) if scores else 0.0  # float() reads bytes and str alike
        found = {ID: doc_id} | _text_fields(items[i + step - 1] or [])
        rows.append((_key_of(doc_id), score, found))
    return rows


def aggregate_fields(reply: Any) -> list[dict[str, str]]:
    """Each row of an FT.AGGREGATE reply as ``{field: text}``, RESP3 or RESP2; ``{}`` for a
    row the engine could not load (a document whose name holds a NUL byte, when it loads a
    field by name)."""
    if isinstance(reply, dict):
        items = [as_dict(r).get("extra_attributes") for r in as_dict(reply)["results"]]
    else:
        items = list(reply)[1:]
    return [{text(k): text(v) for k, v in as_dict(item or {}).items()} for item in items]


def aggregate_rows(reply: Any) -> list[tuple[str, float, dict[str, str]]]:
    """``(key, score, fields)`` of an FT.AGGREGATE reply that loaded ``__key`` and ``q`` with
    ``ADDSCORES``, RESP3 or RESP2; rows the engine could not load (``aggregate_fields``) are
    left out."""
    return [
        (_key_of(fields["__key"]), float(fields.get("__score", 0.0)), fields)
        for fields in aggregate_fields(reply)
        if "__key" in fields
    ]


def total(reply: Any) -> int:
    """``total_results`` of an FT.SEARCH reply, RESP3 or RESP2."""
    if isinstance(reply, dict):
        return int(as_dict(reply).get("total_results", 0))
    return int(reply[0])


def seq(fields: Mapping[str, str]) -> int | None:
    value = fields.get("q")
    return None if value is None else int(float(value))
