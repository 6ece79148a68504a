"""Lua for the Redis layout (``layout``); every script works inside one partition (hash slot).

Redis holds the memories and a change feed; search runs in the Query Engine or in each process
over a replica of the index (``replica``), so no script ever scores. Each script begins with
the layout's names as Lua locals and shared helpers (``lua_common``): a key is spelled once.

Partitions made before the per-segment feeds existed have no ``segs`` fact; CHANGES then
filters the partition's own feed by segment (reading every key name of the partition, but
sending only the scope's memories).

A versioned write is applied only if it is newer than the key's version and the last clear's;
otherwise the script returns without touching anything ('stale'). Checks come first, so a
rejected write changes nothing.

A sequence is the server's time in microseconds, bumped to stay strictly increasing within the
partition, so recency compares across partitions and processes. Every script is bounded: a
write touches a handful of keys, a sweep at most 16, a page of changes at most ``count`` keys
and about ``max_bytes`` of keys and payload.
"""

from __future__ import annotations

from tta_dev_primitives.stores._redis.lua_common import COMMON, MAY_RUN_FULL

__all__ = [
    "CHANGES", "CLEAR_MARK", "CLEAR_PAGE", "DELETE", "FORGET_MARK", "INDEX_PAGE", "PUT", "SIZE",
    "SWEEP", "TOUCH",
]  # fmt: skip

# KEYS[1] value key; ARGV: base, key, payload, ttl_ms (0 = none), version ('' = none),
# vector bytes ('' or absent = none); for a memory also its analysed terms, scope tags, vector
# dims, length in terms and names (the Query Engine document, written only if the namespace has
# that index).
# Returns the write sequence (server time, microseconds), or 'stale <newer version>'. The same
# versioned write again (its reply was lost, or it was journalled and is replayed) changes
# nothing: it was applied, and what happened to the memory since (a touch's deadline, or its
# expiry) stands; it returns the memory's current sequence.
PUT = (
    COMMON
    + r"""
local base, key, payload, ttl, version = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local vector = ARGV[6] or ''
local bad = check_layout(base, key)
if bad then return bad end
local newer = stale(base, key, version)
if newer then return 'stale ' .. newer end
if version ~= '' and redis.call('HGET', base .. VERSIONS, key) == version then
  local live = redis.call('ZSCORE', base .. LIVE, key)
  if live then return string.format('%d', tonumber(live)) end
  local _, now = next_seq(base)
  return now
end
sweep(base, 16)
local seq, text = next_seq(base)
if ttl > 0 then
  redis.call('SET', KEYS[1], payload, 'PX', ttl)
  redis.call('ZADD', base .. EXPIRY, string.format('%d', math.floor(seq / 1000) + ttl), key)
else
  redis.call('SET', KEYS[1], payload)
  redis.call('ZREM', base .. EXPIRY, key)
end
zadd2(base, LIVE, text, key)
zrem2(base, TOMBS, key)
redis.call('HDEL', base .. TOUCHES, key)
if vector ~= '' then
  redis.call('HSET', base .. VECTORS, key, vector)
else
  redis.call('HDEL', base .. VECTORS, key)
end
if version ~= '' then
  redis.call('HSET', base .. VERSIONS, key, version)
  seen_version(base, version)
else
  redis.call('HDEL', base .. VERSIONS, key)
end
if ARGV[7] then
  index(base, key, text, ttl, ARGV[7], ARGV[8], vector, tonumber(ARGV[9]),
        tonumber(ARGV[10] or '0'), ARGV[11] or '')
end
return text
"""
)

# KEYS[1] value key; ARGV: base, key, ttl_ms (0 = none), version ('' = none). Restarts the
# memory's clock: it expires ttl_ms from now (never, for 0), its search documents with it. A new
# sequence puts it back on the feed, so replicas learn its deadline. Its version goes to ``t``,
# not ``w``: it changes no value. ``t`` holds '<touch version> <w then>', and counts only while
# ``w`` is unchanged: a process that knows nothing of ``t`` (the version before) writes ``w``
# without clearing it. Returns that sequence and the newest version it replaced
# ('<seq> <version or nothing>'), '' if there is no memory under key, or 'stale <newer version>'.
TOUCH = (
    COMMON
    + r"""
local base, key, ttl, version = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local bad = check_layout(base, key)
if bad then return bad end
local written = redis.call('HGET', base .. VERSIONS, key) or ''
local touched = redis.call('HGET', base .. TOUCHES, key)
if touched then
  local tv, tw = string.match(touched, '^(%S+) ?(%S*)$')
  if tw == written then touched = tv else touched = nil end
end
local newer = stale(base, key, version)
if not newer and version ~= '' and touched and touched > version then newer = touched end
if newer then return 'stale ' .. newer end
sweep(base, 16)
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
local seq, text = next_seq(base)
local docs = {}
local f = base .. DOC .. key
if redis.call('EXISTS', f) == 1 then
  docs[1] = f
  local nv = tonumber(redis.call('HGET', f, 'nv') or '0')
  for i = 1, nv - 1 do docs[#docs + 1] = base .. DOC_VECTOR .. i .. ':' .. key end
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', base .. EXPIRY, string.format('%d', math.floor(seq / 1000) + ttl), key)
  for _, d in ipairs(docs) do redis.call('PEXPIRE', d, ttl) end
  local doc = docs[1] and redis.call('HMGET', docs[1], 'n', 'c')
  if doc and doc[1] then
    local lengths = DOC_LENGTHS
    if doc[2] == '1' then lengths = DOC_COUNTED end
    redis.call('HSET', base .. lengths, key, doc[1])
  end
else
  redis.call('PERSIST', KEYS[1])
  redis.call('ZREM', base .. EXPIRY, key)
  for _, d in ipairs(docs) do redis.call('PERSIST', d) end
end
for _, d in ipairs(docs) do redis.call('HSET', d, 'q', text) end
zadd2(base, LIVE, text, key)
local replaced = written
if touched and touched > replaced then replaced = touched end
if version ~= '' then
  -- Not the value's version (``w``): a write older than this touch is still newer than the
  -- value it touched, and must apply (a replayed outage write, one overtaken on the way).
  redis.call('HSET', base .. TOUCHES, key, version .. ' ' .. written)
  seen_version(base, version)
end
return text .. ' ' .. replaced
"""
)

# KEYS[1] value key; ARGV: base, key, version ('' = none). Returns 1 if a live memory was
# removed, 0 if there was none, or 'stale <newer version>'. It may run under OOM: it frees.
DELETE = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, key, version = ARGV[1], ARGV[2], ARGV[3]
local bad = check_layout(base, key)
if bad then return bad end
local newer = stale(base, key, version)
if newer then return 'stale ' .. newer end
sweep(base, 16)
local removed = redis.call('DEL', KEYS[1])
local was = zrem2(base, LIVE, key)
redis.call('HDEL', base .. TOUCHES, key)
unindex(base, key)
redis.call('HDEL', base .. VECTORS, key)
redis.call('ZREM', base .. EXPIRY, key)
if version ~= '' then
  -- Even for a key that is not there: an older write replayed later must not bring it back.
  redis.call('HSET', base .. VERSIONS, key, version)
  seen_version(base, version)
  tombstone(base, key)
elseif was == 1 then
  redis.call('HDEL', base .. VERSIONS, key)
  tombstone(base, key)
end
return removed
"""
)

# ARGV: base, version. Starts a clear: later writes older than `version` are stale, and
# replicas reload (a new epoch; CLEAR_PAGE then removes what is older, page by page). It may
# run under OOM, like CLEAR_PAGE.
CLEAR_MARK = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, version = ARGV[1], ARGV[2]
local denied = check_rights(base)
if denied then return denied end
local cv = redis.call('HGET', base .. FACTS, FACT_CLEARED)
if version ~= '' and (not cv or cv < version) then
  redis.call('HSET', base .. FACTS, FACT_CLEARED, version)
end
local _, text = next_seq(base)
redis.call('HSET', base .. FACTS, FACT_EPOCH, text)
redis.call('SET', base .. HEAD_EPOCH, text)  -- every segment's replica reads it again
return 1
"""
)

# ARGV: base, scope, version. Starts a forget of `scope`: a write of a key in it that is older
# than `version` (an outage write another process replays later) is stale from now on, as after
# a clear. Keeps the newest version per scope, for the newest TOMBSTONES scopes (as tombstones:
# a journal replayed after more forgets than that may bring back a memory of an older one). It
# may run under OOM: it is for freeing.
FORGET_MARK = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, scope, version = ARGV[1], ARGV[2], ARGV[3]
local denied = check_rights(base)
if denied then return denied end
local fv = redis.call('HGET', base .. FORGOTTEN, scope)
if not fv or fv < version then
  redis.call('HSET', base .. FORGOTTEN, scope, version)
  redis.call('ZADD', base .. FORGOTTEN_ORDER, tonumber(string.sub(version, 1, 16), 16), scope)
end
local extra = redis.call('ZCARD', base .. FORGOTTEN_ORDER) - TOMBSTONES
if extra > 0 then
  if extra > 64 then extra = 64 end
  local old = redis.call('ZRANGE', base .. FORGOTTEN_ORDER, 0, extra - 1)
  redis.call('HDEL', base .. FORGOTTEN, unpack(old))
  redis.call('ZREMRANGEBYRANK', base .. FORGOTTEN_ORDER, 0, extra - 1)
end
return 1
"""
)

# ARGV: base, most. Forgets up to `most` memories whose TTL has passed (as every write does for
# 16): the Query Engine's running totals (n.ftdocs, n.ftlen, fs) count them until then. Returns
# 0 if more are due now, else the milliseconds until the next one is (-1: none has a TTL). It
# may run under OOM: it frees.
SWEEP = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, most = ARGV[1], tonumber(ARGV[2])
local denied = check_rights(base)
if denied then return denied end
sweep(base, most)
local now_ms = math.floor(now_us() / 1000)
local next = redis.call('ZRANGE', base .. EXPIRY, 0, 0, 'WITHSCORES')
if #next == 0 then return -1 end
local due = tonumber(next[2]) - now_ms
if due <= 0 then return 0 end
return due
"""
)

# ARGV: base, version ('' = everything), zset ('r' live keys or 'g' tombstones), after (a
# sequence; '-inf' to start), count. Removes, among the next `count` entries of the zset after
# `after`, those older than `version`. Returns {the last sequence looked at, or '' if done,
# how many were removed}.
CLEAR_PAGE = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, version, zset, after = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local denied = check_rights(base)
if denied then return denied end
local count = tonumber(ARGV[5])
local from = after
if after ~= '-inf' then from = '(' .. after end
local rows = redis.call('ZRANGEBYSCORE', base .. zset, from, '+inf', 'WITHSCORES',
                        'LIMIT', 0, count)
local removed = 0
for i = 1, #rows, 2 do
  local key = rows[i]
  local cur = redis.call('HGET', base .. VERSIONS, key)
  if version == '' or not cur or cur < version then
    if zset == LIVE then
      unindex(base, key)
      redis.call('DEL', base .. VALUE .. key)
      redis.call('ZREM', base .. EXPIRY, key)
      redis.call('HDEL', base .. VECTORS, key)
    end
    zrem2(base, zset, key)
    drop_empty_head(base, seg_of(key))
    redis.call('HDEL', base .. VERSIONS, key)
    redis.call('HDEL', base .. TOUCHES, key)
    removed = removed + 1
  end
end
local last = ''
if #rows >= 2 * count then last = rows[#rows] end
return {last, removed}
"""
)

# ARGV: base, the backfill's lease token ('': none checked), then per memory: key, sequence,
# terms, tags, vector dims (0: none of this process's embedder's size), length in terms, names.
# Returns -1, writing nothing, if the lease is another's or none. The backfill of a namespace's
# Query Engine index: writes the documents of memories still holding that write (a newer write
# or a delete has done its own) that lack them, and moves n.ftcur to the page's last sequence.
INDEX_PAGE = (
    COMMON
    + r"""
local base, lease = ARGV[1], ARGV[2]
local denied = check_rights(base)
if denied then return denied end
-- Only while this backfill holds the partition's lease: one restarted meanwhile
-- (``restart_backfill``) must not see its cursor moved by the old one.
if lease ~= '' and redis.call('GET', base .. BACKFILL_LEASE) ~= lease then return -1 end
local done = 0
for i = 3, #ARGV, 7 do
  local key, seq = ARGV[i], ARGV[i + 1]
  local cur = redis.call('ZSCORE', base .. LIVE, key)
  if cur and tonumber(cur) == tonumber(seq) then
    local ttl = redis.call('PTTL', base .. VALUE .. key)
    local vector = redis.call('HGET', base .. VECTORS, key) or ''
    -- A document this write already keeps (with its vectors, if it has any, its length,
    -- these tags, and counted in its segment's totals: an older form lacks them) is left
    -- alone: rewriting it would leave a deleted entry in the engine's statistics until its GC
    -- runs.
    -- Its terms and names too: a version whose analyzer splits words otherwise (form 4)
    -- rewrites those, and one that kept names in `t` (form 5) those holding names.
    local doc = redis.call('HMGET', base .. DOC .. key, 'q', 'nv', 'n', 's', 'c', 't', 'w')
    local kept = doc[1] and tonumber(doc[1]) == tonumber(seq) and doc[3]
                 and (vector == '' or tonumber(doc[2] or '0') > 0) and doc[4] == ARGV[i + 3]
                 and doc[5] == '1' and doc[6] == ARGV[i + 2] and (doc[7] or '') == ARGV[i + 6]
    if ttl ~= -2 and not kept then
      if ttl < 0 then ttl = 0 end
      index(base, key, seq, ttl, ARGV[i + 2], ARGV[i + 3], vector, tonumber(ARGV[i + 4]),
            tonumber(ARGV[i + 5]), ARGV[i + 6])
      done = done + 1
    end
  end
  local at = tonumber(redis.call('HGET', base .. FACTS, FACT_ENGINE_CURSOR) or '0')
  if tonumber(seq) > at then redis.call('HSET', base .. FACTS, FACT_ENGINE_CURSOR, seq) end
end
return done
"""
)

# ARGV: base. Live memories in the partition (those past their deadline are not counted).
SIZE = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base = ARGV[1]
local now_ms = math.floor(now_us() / 1000)
return redis.call('ZCARD', base .. LIVE) - redis.call('ZCOUNT', base .. EXPIRY, '-inf', now_ms)
"""
)

# ARGV: base, since (write seq), since_del (delete seq; '-' = start from now), count, max_bytes,
# seg ('' = the whole partition; else only keys of that first segment), then optionally the
# server run the caller last read the partition on followed by witnesses: key, seq pairs of
# writes and deletes it read (``witnesses``).
# Returns {epoch or '', gcut or '0', now_ms, newest tombstone seq or '0', writes, deletes, more,
# the last write seq looked at (or since), the partition's last seq or '0', this server's run
# ('<run_id>:<master_replid>'; '' if INFO is refused), '1' if a witness is gone (else '0')}:
# the writes after `since` in sequence order (a page), and the deletes after `since_del` as
# {key, seq, ...}. Writes come as ONE string, a record per write: a header line
# "<key bytes> <payload bytes or -1> <seq> <deadline ms or -> <vector bytes>\n", then the key,
# the payload and the vector. (Thousands of separate reply elements cost the client ~10 us each
# to parse; one string, ~1.) A page stops after `count` keys or `max_bytes` of keys and
# payloads, whichever comes first: long keys count too.
# A server that restarted from an older snapshot, or a replica promoted while it lagged, keeps the
# partition's epoch; once written to again, its last seq passes what the caller read. So on
# another run than the caller's, each witness must still be there at its seq or a later one
# (rewritten, or deleted since): one that is not was lost, and the caller reads the partition
# again. A run is the server's run_id (a restart) and its replication id (a promotion, or a
# full resync from another master, changes it while run_id stays).
CHANGES = (
    MAY_RUN_FULL
    + COMMON
    + r"""
local base, since, since_del = ARGV[1], ARGV[2], ARGV[3]
local denied = check_rights(base)
if denied then return denied end
local count, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local seg = ARGV[6] or ''
local run, lost, was = '', '0', ARGV[7] or ''
local info = redis.pcall('INFO', 'server', 'replication')  -- (~10 us)
if type(info) ~= 'string' then  -- (Redis 6 takes one section)
  local repl = redis.pcall('INFO', 'replication')
  info = redis.pcall('INFO', 'server')
  if type(info) == 'string' and type(repl) == 'string' then info = info .. repl end
end
if type(info) == 'string' then
  local id = string.match(info, 'run_id:(%x+)')
  if id then run = id .. ':' .. (string.match(info, 'master_replid:(%x+)') or '') end
end
if was ~= '' and run ~= '' and was ~= run then
  -- A witness deleted later whose tombstone was trimmed since (``gcut``) proves nothing.
  local cut = tonumber(redis.call('HGET', base .. FACTS, FACT_TRIMMED) or '0')
  for i = 8, #ARGV - 1, 2 do
    local key, seq = ARGV[i], tonumber(ARGV[i + 1])
    local at = tonumber(redis.call('ZSCORE', base .. LIVE, key) or '-1')
    if at < seq then
      at = tonumber(redis.call('ZSCORE', base .. TOMBS, key) or '-1')
      if at < seq and cut < seq then lost = '1'; break end
    end
  end
end
sweep(base, 16)
local facts = redis.call('HMGET', base .. FACTS, FACT_EPOCH, FACT_TRIMMED, FACT_SEGMENTS,
                         FACT_SEQ)
-- A partition never written (or written before heads existed) gets its head now, so that the
-- replica can skip it next time.
if redis.call('SET', base .. HEAD, facts[4] or '0', 'NX') then
  redis.call('SET', base .. HEAD_MARK, facts[4] or '0')
end
local feed, tombs, only = base .. LIVE, base .. TOMBS, nil
if seg ~= '' then
  if facts[3] then
    feed, tombs = base .. LIVE .. ':' .. seg, base .. TOMBS .. ':' .. seg
  else
    only = seg  -- made before per-segment feeds: filter the partition's own
  end
end
local newest = redis.call('ZREVRANGE', base .. TOMBS, 0, 0, 'WITHSCORES')
local puts, bytes, more, last = {}, 0, 0, since
local rows = redis.call('ZRANGEBYSCORE', feed, '(' .. since, '+inf', 'WITHSCORES',
                        'LIMIT', 0, count)
for i = 1, #rows, 2 do
  local key = rows[i]
  last = rows[i + 1]
  bytes = bytes + #key
  if only == nil or seg_of(key) == only then
    local payload = redis.call('GET', base .. VALUE .. key)
    local deadline = redis.call('ZSCORE', base .. EXPIRY, key)
    local size, vector = -1, ''
    if payload then
      size = #payload
      vector = redis.call('HGET', base .. VECTORS, key) or ''
      bytes = bytes + size + #vector
    else
      payload = ''
    end
    puts[#puts + 1] = string.format('%d %d %s %s %d\n', #key, size, rows[i + 1],
                                    deadline or '-', #vector)
    puts[#puts + 1] = key
    puts[#puts + 1] = payload
    puts[#puts + 1] = vector
  end
  if bytes >= max_bytes and i + 1 < #rows then more = 1; break end
end
if #rows >= 2 * count then more = 1 end
local dels = {}
if since_del ~= '-' then
  dels = redis.call('ZRANGEBYSCORE', tombs, '(' .. since_del, '+inf', 'WITHSCORES',
                    'LIMIT', 0, count)
  if #dels >= 2 * count then more = 1 end
end
return {facts[1] or '', facts[2] or '0', string.format('%d', math.floor(now_us() / 1000)),
        newest[2] or '0', table.concat(puts), dels, more, last, facts[4] or '0', run, lost}
"""
)
