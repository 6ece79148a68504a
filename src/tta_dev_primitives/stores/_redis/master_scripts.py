"""Read-only Lua that runs on one cluster master over any of its slots (the Query Engine's
searches there), so that a search costs one command per master, not one per key.

Names go in ARGV, not KEYS: declared keys must share a slot, and these span the master's.
``allow-cross-slot-keys`` lets a script read them; a key another master owns (a resharding
moved it) is an error, and the caller then reads through the cluster client instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from tta_dev_primitives.stores._redis.layout import (
    FACT_ENGINE_DOCS,
    FACT_ENGINE_LENGTH,
    FACTS,
    SEGMENT_TOTALS,
)
from tta_dev_primitives.stores._redis.lua_common import SEGMENT_PAIR

__all__ = ["SEARCH", "TEXTS", "TOTALS", "flatten"]

_FLAGS = "#!lua flags=no-writes,allow-cross-slot-keys\n"

#: ARGV: names of Query Engine documents. Each one's terms ``t`` and names ``w`` ('' if it is
#: gone, or has none), in order: two replies a document.
#: (On a cluster the engine returns only SORTABLE fields of documents outside its index name's
#: slot; one HGET each through the cluster client cost ~20 us of client time per document.)
TEXTS: Final = (
    _FLAGS
    + r"""
local out = {}
for i, name in ipairs(ARGV) do
  local doc = redis.call('HMGET', name, 't', 'w')
  out[2 * i - 1], out[2 * i] = doc[1] or '', doc[2] or ''
end
return out
"""
)

#: ARGV: a first key segment ('' for the whole namespace), then partition bases. The documents
#: and total length the partitions' running totals hold (``n.ftdocs``/``n.ftlen``, or the
#: segment's ``fs`` field), summed: ``{documents, length}``.
TOTALS: Final = (
    _FLAGS
    + f"local FACTS, SEGMENT_TOTALS = '{FACTS}', '{SEGMENT_TOTALS}'\n"
    + f"local DOCS, LENGTH = '{FACT_ENGINE_DOCS}', '{FACT_ENGINE_LENGTH}'\n"
    + SEGMENT_PAIR
    + r"""
local seg, docs, length = ARGV[1], 0, 0
for i = 2, #ARGV do
  local d, l
  if seg == '' then
    local v = redis.call('HMGET', ARGV[i] .. FACTS, DOCS, LENGTH)
    d, l = v[1], v[2]
  else
    d, l = segment_pair(ARGV[i], seg)
  end
  docs, length = docs + tonumber(d or '0'), length + tonumber(l or '0')
end
return {string.format('%d', docs), string.format('%d', length)}
"""
)

#: ARGV: how many commands, then each command as its number of words and its words (Query
#: Engine reads: ``FT.SEARCH``, ``FT.AGGREGATE``). Their replies, in order; each result of the
#: first (an ``FT.SEARCH ... WITHSCORES``) gets its document's ``t`` and ``w`` appended to its
#: fields, as ``TEXTS`` reads them. So a master answers a search in one command, not one per
#: term count and then one per candidate.
SEARCH: Final = (
    _FLAGS
    + r"""
local replies, at = {}, 2
for c = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[at])
  replies[c] = redis.call(unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
local first = replies[1]
for i = 2, #first, 3 do
  local fields = first[i + 2]
  if type(fields) ~= 'table' then
    fields = {}
    first[i + 2] = fields
  end
  local doc = redis.call('HMGET', first[i], 't', 'w')
  fields[#fields + 1] = 't'
  fields[#fields + 1] = doc[1] or ''
  fields[#fields + 1] = 'w'
  fields[#fields + 1] = doc[2] or ''
end
return replies
"""
)


def flatten(commands: Sequence[Sequence[Any]]) -> list[Any]:
    """``SEARCH``'s ARGV for these commands."""
    words: list[Any] = [len(commands)]
    for command in commands:
        words += [len(command), *command]
    return words
