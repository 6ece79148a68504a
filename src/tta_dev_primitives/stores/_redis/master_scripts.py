"""Read-only Lua that runs on one cluster master over any of its slots (the Query Engine's
searches there), so that a search costs one command per master, not one per key.

Names go in ARGV, not KEYS: declared keys must share a slot, and these span the master's.
``allow-cross-slot-keys`` lets a script read them; a key another master owns (a resharding
moved it) is an error, and the caller then reads through the cluster client instead.
"""

from __future__ import annotations

from typing import Final

from tta_dev_primitives.stores._redis.layout import (
    FACT_ENGINE_DOCS,
    FACT_ENGINE_LENGTH,
    FACTS,
    SEGMENT_TOTALS,
)

__all__ = ["TEXTS", "TOTALS"]

_FLAGS = "#!lua flags=no-writes,allow-cross-slot-keys\n"

#: ARGV: names of Query Engine documents. Each one's terms ``t`` ('' if it is gone), in order.
#: (On a cluster the engine returns only SORTABLE fields of documents outside its index name's
#: slot; one HGET each through the cluster client cost ~20 us of client time per document.)
TEXTS: Final = (
    _FLAGS
    + r"""
local out = {}
for i, name in ipairs(ARGV) do out[i] = redis.call('HGET', name, 't') or '' end
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
    + r"""
local seg, docs, length = ARGV[1], 0, 0
for i = 2, #ARGV do
  local d, l
  if seg == '' then
    local v = redis.call('HMGET', ARGV[i] .. FACTS, DOCS, LENGTH)
    d, l = v[1], v[2]
  else
    local v = redis.call('HGET', ARGV[i] .. SEGMENT_TOTALS, seg)
    if v then d, l = string.match(v, '^(%-?%d+) (%-?%d+)$') end
  end
  docs, length = docs + tonumber(d or '0'), length + tonumber(l or '0')
end
return {string.format('%d', docs), string.format('%d', length)}
"""
)
