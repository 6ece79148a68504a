"""The Lua every script begins with: the layout's names as Lua locals, and shared helpers.

Each script starts with the layout's key suffixes and fact names as Lua locals of the same
names (``FACTS``, ``VALUE``, ``FACT_SEQ``...), formatted from ``layout``'s constants, so a key
is spelled once; then helpers that every script may call (sequences, segments, the layout check,
versions, tombstones, Query Engine documents, the expiry sweep).
"""

from __future__ import annotations

from collections.abc import Mapping

from tta_dev_primitives.stores._redis import layout
from tta_dev_primitives.stores._redis.errors import BEFORE_ANY_CHANGE
from tta_dev_primitives.stores._redis.layout import OWN_TYPES

__all__ = ["COMMON", "MAY_RUN_FULL", "TOMBSTONES"]

#: Tombstones kept per partition; a replica further behind than this reloads the partition.
TOMBSTONES = 100_000

# Scripts that only free memory, or read (their expiry sweep frees), run even when Redis is
# full (``maxmemory`` with ``noeviction``): deletes and clears must be able to make room, and
# reads keep working. A write (PUT) gets OOM and the caller a ``BackendRefusedError``.
MAY_RUN_FULL = "#!lua flags=allow-oom\n"


def _lua_string(text: str) -> str:
    """A Lua string literal of ``text`` (the layout's names: letters and ``:`` only)."""
    return "'" + text + "'"


def _lua_table(types: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in types.items()) + "}"


# The layout's names as Lua locals (``local FACTS = 'n'``...), so scripts never spell a key.
_NAMES = "".join(
    f"local {name} = {_lua_string(getattr(layout, name))}\n"
    for name in layout.__all__
    if name.isupper() and isinstance(getattr(layout, name), str)
)

# A segment's running totals, "<documents> <length>" in one field, as two numbers (0, 0 for
# one with none): the one reader of that field in Lua (``keywords._sum_totals`` in Python).
# Needs SEGMENT_TOTALS defined before it.
SEGMENT_PAIR = r"""
local function segment_pair(base, seg)
  local was = redis.call('HGET', base .. SEGMENT_TOTALS, seg)
  if not was then return 0, 0 end
  local d, l = string.match(was, '^(%-?%d+) (%-?%d+)$')
  return tonumber(d), tonumber(l)
end
"""

# Shared helpers, prepended to each script.
COMMON = (
    _NAMES
    + SEGMENT_PAIR
    + r"""
local TOMBSTONES = """
    + str(TOMBSTONES)
    + "\nlocal BEFORE_ANY_CHANGE = "
    + _lua_string(BEFORE_ANY_CHANGE)
    + r"""

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The next write sequence of the partition (strictly increasing); creates the epoch. A new
-- partition keeps per-segment feeds from its first write (the ``segs`` fact says so).
local function next_seq(base)
  local seq = now_us()
  local last = tonumber(redis.call('HGET', base .. FACTS, FACT_SEQ) or '0')
  if seq <= last then seq = last + 1 end
  local s = string.format('%d', seq)
  if last == 0 and not redis.call('HGET', base .. FACTS, FACT_EPOCH) then
    redis.call('HSET', base .. FACTS, FACT_SEGMENTS, '1')
  end
  redis.call('HSET', base .. FACTS, FACT_SEQ, s)
  redis.call('HSETNX', base .. FACTS, FACT_EPOCH, s)
  -- A head this version did not set: a writer of an older version (which moves no segment's
  -- head) wrote since, so every segment's replica must read the partition again.
  local heads = redis.call('MGET', base .. HEAD, base .. HEAD_MARK)
  if heads[1] and heads[1] ~= heads[2] then redis.call('SET', base .. HEAD_EPOCH, s) end
  redis.call('SET', base .. HEAD, s)
  redis.call('SET', base .. HEAD_MARK, s)
  return seq, s
end

-- A key's first segment: up to its first ':' after the first character, or the whole key.
local function seg_of(key)
  local at = string.find(key, ':', 2, true)
  if at then return string.sub(key, 1, at - 1) end
  return key
end

-- Refuse a write the Redis user may not finish, before any change: Redis checks an ACL at
-- each command a script runs, so a user without one (say -zrem) left a write half-applied,
-- its value set and its feeds not (review R16). Redis 6 has no acl_check_cmd: there a refusal
-- may still come part-way. ``BEFORE_ANY_CHANGE`` tells the client nothing was changed.
-- The read commands too: a user without one (say -exists) had a clear stop part-way, one
-- memory deleted and the rest kept (review R21).
local WRITES = {'SET', 'DEL', 'HSET', 'HDEL', 'HSETNX', 'ZADD', 'ZREM', 'ZREMRANGEBYRANK',
                'PEXPIRE', 'PERSIST', 'GET', 'MGET', 'EXISTS', 'TYPE', 'TIME', 'HGET', 'HMGET',
                'ZSCORE', 'ZCARD', 'ZCOUNT', 'ZRANGE', 'ZREVRANGE', 'ZRANGEBYSCORE', 'PTTL'}
local function check_rights(base)
  if not redis.acl_check_cmd then return nil end
  for _, command in ipairs(WRITES) do
    if not redis.acl_check_cmd(command, base .. FACTS) then
      return redis.error_reply("NOPERM this user has no permissions to run the '" ..
                               string.lower(command) .. "' command" .. BEFORE_ANY_CHANGE)
    end
  end
  return nil
end

-- Refuse to touch a partition whose own keys (and the key's segment feeds) hold the wrong
-- type, or that the user may not write (``check_rights``), before any change, so that no
-- write is half-applied (the client reads WRONGTYPE as "Redis cannot serve now").
local LAYOUT = """
    + _lua_table(OWN_TYPES)
    + r"""
local function check_layout(base, key)
  local denied = check_rights(base)
  if denied then return denied end
  local seg = seg_of(key)
  local wanted = {[LIVE .. ':' .. seg] = 'zset', [TOMBS .. ':' .. seg] = 'zset'}
  for suffix, want in pairs(LAYOUT) do wanted[suffix] = want end
  for suffix, want in pairs(wanted) do
    local got = redis.call('TYPE', base .. suffix)['ok']
    if got ~= want and got ~= 'none' then
      return redis.error_reply('WRONGTYPE ' .. base .. suffix .. ' holds a ' .. got ..
                               BEFORE_ANY_CHANGE)
    end
  end
  return nil
end

-- Add or remove a key in a zset and in its segment's copy of it (``r``/``r:<seg>``, ``g``...).
-- An add (a write, a touch, a tombstone: `score` is a new sequence) moves the segment's head;
-- a remove comes with an add, but in a clear, whose marks move every head (``hg``).
local function zadd2(base, zset, score, key)
  local seg = seg_of(key)
  redis.call('ZADD', base .. zset, score, key)
  redis.call('ZADD', base .. zset .. ':' .. seg, score, key)
  redis.call('SET', base .. SEGMENT_HEAD .. seg, score)
end
local function zrem2(base, zset, key)
  local was = redis.call('ZREM', base .. zset, key)
  redis.call('ZREM', base .. zset .. ':' .. seg_of(key), key)
  return was
end
-- A segment's head goes with the last of its feeds, so that users who left take no room; true
-- if it went. Its replicas must then read the partition again (a head gone may have been gone
-- when they last looked): a clear's mark, or the caller, moves ``hg``.
local function drop_empty_head(base, seg)
  if redis.call('EXISTS', base .. LIVE .. ':' .. seg, base .. TOMBS .. ':' .. seg) > 0 then
    return false
  end
  return redis.call('DEL', base .. SEGMENT_HEAD .. seg) == 1
end

-- The version of the newest forget of a scope `key` belongs to (each prefix of it that ends
-- just before a ':', and the key itself), or false.
local function forgotten(base, key)
  local scopes = {}
  local at = string.find(key, ':', 2, true)
  while at do
    scopes[#scopes + 1] = string.sub(key, 1, at - 1)
    at = string.find(key, ':', at + 1, true)
  end
  scopes[#scopes + 1] = key
  local newest = false
  for _, v in ipairs(redis.call('HMGET', base .. FORGOTTEN, unpack(scopes))) do
    if v and (not newest or v > newest) then newest = v end
  end
  return newest
end

-- If a write of `version` must not be applied, the newer version that stands (the key's, a
-- clear's, or a forget's of a scope the key is in); else false. The key's own version again
-- is not stale: a write retried after a lost reply succeeds (PUT then changes nothing). Nor is
-- a forget's own: its deletes carry its version, so that they remove only what is older (a
-- newer write of the key stands), and no other write has it (versions are unique).
local function stale(base, key, version)
  if version == '' then return false end
  local cv = redis.call('HGET', base .. FACTS, FACT_CLEARED)
  if cv and cv >= version then return cv end
  local fv = forgotten(base, key)
  if fv and fv > version then return fv end
  local cur = redis.call('HGET', base .. VERSIONS, key)
  if cur and cur > version then return cur end
  return false
end

-- Keep the partition's newest version (`n.mv`): a clear older than it is refused as stale.
local function seen_version(base, version)
  if version == '' then return end
  local mv = redis.call('HGET', base .. FACTS, FACT_NEWEST)
  if not mv or mv < version then redis.call('HSET', base .. FACTS, FACT_NEWEST, version) end
end

-- A tombstone for `key` (keeping its version), trimming the oldest past TOMBSTONES.
local function tombstone(base, key)
  local _, text = next_seq(base)
  zadd2(base, TOMBS, text, key)
  local extra = redis.call('ZCARD', base .. TOMBS) - TOMBSTONES
  if extra > 0 then
    if extra > 64 then extra = 64 end
    local old = redis.call('ZRANGE', base .. TOMBS, 0, extra - 1, 'WITHSCORES')
    local dropped = false
    for i = 1, #old, 2 do
      redis.call('HDEL', base .. VERSIONS, old[i])
      redis.call('ZREM', base .. TOMBS .. ':' .. seg_of(old[i]), old[i])
      if drop_empty_head(base, seg_of(old[i])) then dropped = true end
    end
    if dropped then redis.call('SET', base .. HEAD_EPOCH, text) end
    redis.call('HSET', base .. FACTS, FACT_TRIMMED, old[#old])
    redis.call('ZREMRANGEBYRANK', base .. TOMBS, 0, extra - 1)
  end
end

-- Add to or take from a partition's BM25 statistics: the namespace's (n.ftdocs, n.ftlen) and,
-- for a document of form 3 (`counted`), its first segment's (SEGMENT_TOTALS: one user's, read
-- by a search scoped to that user). HGET and HSET, not HINCRBY: the documented ACL stays as
-- it was. A segment left with no documents loses its field, so forgotten users take no room.
local function bump(base, field, delta)
  local now = tonumber(redis.call('HGET', base .. FACTS, field) or '0') + delta
  redis.call('HSET', base .. FACTS, field, string.format('%d', now))
end
local function count(base, key, docs, length, counted)
  bump(base, FACT_ENGINE_DOCS, docs)
  bump(base, FACT_ENGINE_LENGTH, length)
  if not counted then return end
  local seg = seg_of(key)
  local d, l = segment_pair(base, seg)
  d, l = d + docs, l + length
  if d == 0 and l == 0 then
    redis.call('HDEL', base .. SEGMENT_TOTALS, seg)
  else
    redis.call('HSET', base .. SEGMENT_TOTALS, seg, string.format('%d %d', d, l))
  end
end

-- Take `key`'s document off the statistics, by its length: the document's own `n`, or the
-- one kept in DOC_COUNTED / DOC_LENGTHS once an expired one is gone. Documents without `n`
-- (written before version 2) were never counted; those without `c` (before form 3) were
-- counted in the namespace's totals only.
local function uncount(base, key)
  local doc = redis.call('HMGET', base .. DOC .. key, 'n', 'c')
  local n, counted = doc[1], doc[2] == '1'
  if not n then
    n = redis.call('HGET', base .. DOC_COUNTED, key)
    counted = n ~= false
    if not n then n = redis.call('HGET', base .. DOC_LENGTHS, key) end
  end
  redis.call('HDEL', base .. DOC_LENGTHS, key)
  redis.call('HDEL', base .. DOC_COUNTED, key)
  if n then count(base, key, -1, -tonumber(n), counted) end
end

-- Remove `key`'s Query Engine documents (its f: hash and the h: hashes of further vectors).
local function unindex(base, key)
  local f = base .. DOC .. key
  uncount(base, key)
  local nv = tonumber(redis.call('HGET', f, 'nv') or '0')
  for i = 1, nv - 1 do redis.call('DEL', base .. DOC_VECTOR .. i .. ':' .. key) end
  redis.call('DEL', f)
end

-- Write `key`'s Query Engine documents, if the namespace has an index (n.ft): its terms, scope
-- tags, sequence and length `n` (counted in n.ftdocs / n.ftlen and in its segment's totals:
-- `c`), its names `w` (stop words written as names; none: no field), and its vectors of `dims`
-- floats each, if the index's vector field has that size (n.ftdims): another embedder's vectors
-- would make the engine skip the document.
local function index(base, key, seq, ttl, terms, tags, vector, dims, n, names)
  local facts = redis.call('HMGET', base .. FACTS, FACT_ENGINE, FACT_ENGINE_DIMS)
  if facts[1] ~= '1' then return end
  unindex(base, key)
  local f = base .. DOC .. key
  local width = dims * 4
  local nv = 0
  if width > 0 and tonumber(facts[2] or '0') == dims and #vector % width == 0 then
    nv = #vector / width
  end
  -- One HSET: each write of the hash makes the engine index the document again, and a
  -- document indexed twice in a row left its statistics off (RediSearch 2.10: average length
  -- doubled, some terms' idf far too high), so BM25STD proposed the wrong candidates.
  local fields = {'t', terms, 's', tags, 'q', seq, 'nv', nv, 'n', n, 'c', '1'}
  if names ~= '' then
    fields[#fields + 1] = 'w'
    fields[#fields + 1] = names
  end
  if nv > 0 then
    fields[#fields + 1] = 'e'
    fields[#fields + 1] = string.sub(vector, 1, width)
  end
  redis.call('HSET', f, unpack(fields))
  count(base, key, 1, n, true)
  if ttl > 0 then
    redis.call('PEXPIRE', f, ttl)
    redis.call('HSET', base .. DOC_COUNTED, key, n)
  end
  for i = 1, nv - 1 do
    local h = base .. DOC_VECTOR .. i .. ':' .. key
    local row = string.sub(vector, i * width + 1, (i + 1) * width)
    redis.call('HSET', h, 's', tags, 'q', seq, 'e', row)
    if ttl > 0 then redis.call('PEXPIRE', h, ttl) end
  end
end

-- Forget up to `most` keys whose TTL has passed (their values are gone already).
local function sweep(base, most)
  local now_ms = math.floor(now_us() / 1000)
  local due = redis.call('ZRANGEBYSCORE', base .. EXPIRY, '-inf', now_ms, 'LIMIT', 0, most)
  for _, key in ipairs(due) do
    -- Redis sets the value's own expiry a moment after the deadline here was taken, so a due
    -- key may still be there for a millisecond: then it keeps its place, at Redis's deadline.
    local left = redis.call('PTTL', base .. VALUE .. key)
    if left == -2 then
      uncount(base, key)
      zrem2(base, LIVE, key)
      redis.call('HDEL', base .. VECTORS, key)
      redis.call('HDEL', base .. TOUCHES, key)
      tombstone(base, key)
      redis.call('ZREM', base .. EXPIRY, key)
    elseif left == -1 then
      redis.call('ZREM', base .. EXPIRY, key)
    else
      redis.call('ZADD', base .. EXPIRY, now_ms + left, key)
    end
  end
end
"""
)
