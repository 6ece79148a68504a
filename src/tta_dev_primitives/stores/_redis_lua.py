"""Lua for the Redis layout. Every script works inside one partition (one hash slot).

Keys of a partition start with ``base`` = ``<namespace>:{<namespace>#<p>}:``:

- ``v:<key>``   the memory's JSON (string, with PX expiry for a TTL)
- ``d:<key>``   its index entry (hash: term -> tf, plus ``#len`` tokens and ``#seq``)
- ``p:<term>``  postings (hash: key -> tf * 2^20 + doc length, so scoring needs no lookups)
- ``t``         term dictionary (zset, all scores 0, for prefix lookups by ZRANGEBYLEX)
- ``r``         recency (zset: key -> write sequence)
- ``s:<scope>`` scope buckets, one per ``:``-prefix of a key (zset: key -> write sequence)
- ``x``         expiry deadlines in ms (zset), swept by writes and searches
- ``n``         stats (hash: ``len`` total tokens, ``seq`` last write sequence)

A write sequence is the server's time in microseconds, bumped to stay strictly increasing within
the partition, so recency compares across partitions and processes. Scores follow
``stores._text`` exactly (same float operations in the same order), so Redis and in-process
rankings are bit-identical.
"""

from __future__ import annotations

__all__ = ["DELETE", "PUT", "RECENT", "SCORE", "SIZE", "STATS"]

# Shared helpers, prepended to each script.
_COMMON = r"""
local K1, B = 1.2, 0.75
local TF_SHIFT = 1048576

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function scopes(key)
  local out, i = {}, string.find(key, ':', 2, true)
  while i do
    out[#out + 1] = string.sub(key, 1, i - 1)
    i = string.find(key, ':', i + 1, true)
  end
  return out
end

local function unindex(base, key)
  local dkey = base .. 'd:' .. key
  local meta = redis.call('HGETALL', dkey)
  if #meta == 0 then return false end
  local len = 0
  for i = 1, #meta, 2 do
    local f = meta[i]
    if f == '#len' then
      len = tonumber(meta[i + 1])
    elseif f ~= '#seq' then
      local pkey = base .. 'p:' .. f
      redis.call('HDEL', pkey, key)
      if redis.call('EXISTS', pkey) == 0 then redis.call('ZREM', base .. 't', f) end
    end
  end
  redis.call('DEL', dkey)
  redis.call('ZREM', base .. 'r', key)
  redis.call('ZREM', base .. 'x', key)
  if len ~= 0 then redis.call('HINCRBY', base .. 'n', 'len', -len) end
  for _, scope in ipairs(scopes(key)) do redis.call('ZREM', base .. 's:' .. scope, key) end
  return true
end

-- Drop index entries of memories whose TTL has passed (at most `most`; 0 = all due).
local function sweep(base, most)
  local now_ms = math.floor(now_us() / 1000)
  local due
  if most > 0 then
    due = redis.call('ZRANGEBYSCORE', base .. 'x', '-inf', now_ms, 'LIMIT', 0, most)
  else
    due = redis.call('ZRANGEBYSCORE', base .. 'x', '-inf', now_ms)
  end
  for _, key in ipairs(due) do
    if redis.call('EXISTS', base .. 'v:' .. key) == 0 then
      unindex(base, key)
    else
      redis.call('ZREM', base .. 'x', key)
    end
  end
end
"""

# KEYS[1] value key; ARGV: base, key, payload, ttl_ms (0 = none), length in tokens, and the
# terms as one "term tf term tf ..." string (terms are runs of word characters: no spaces).
# One string instead of 2n arguments: redis-py packs each argument in Python (~0.5 us each).
PUT = (
    _COMMON
    + r"""
local base, key, payload, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
sweep(base, 16)
unindex(base, key)
local seq = now_us()
local last = tonumber(redis.call('HGET', base .. 'n', 'seq') or '0')
if seq <= last then seq = last + 1 end
redis.call('HSET', base .. 'n', 'seq', string.format('%d', seq))
if ttl > 0 then
  redis.call('SET', KEYS[1], payload, 'PX', ttl)
  redis.call('ZADD', base .. 'x', math.floor(seq / 1000) + ttl, key)
else
  redis.call('SET', KEYS[1], payload)
end
local len = tonumber(ARGV[5])
-- The document's entry and the term dictionary in batched calls; postings one per term.
local fields, dict = {'#len', len, '#seq', string.format('%d', seq)}, {}
for term, count in string.gmatch(ARGV[6], '(%S+) (%d+)') do
  local tf = tonumber(count)
  fields[#fields + 1] = term; fields[#fields + 1] = tf
  dict[#dict + 1] = 0; dict[#dict + 1] = term
  redis.call('HSET', base .. 'p:' .. term, key, tf * TF_SHIFT + len)
end
local dkey = base .. 'd:' .. key
for i = 1, #fields, 4000 do
  redis.call('HSET', dkey, unpack(fields, i, math.min(i + 3999, #fields)))
end
for i = 1, #dict, 4000 do
  redis.call('ZADD', base .. 't', unpack(dict, i, math.min(i + 3999, #dict)))
end
redis.call('ZADD', base .. 'r', seq, key)
redis.call('HINCRBY', base .. 'n', 'len', len)
for _, scope in ipairs(scopes(key)) do redis.call('ZADD', base .. 's:' .. scope, seq, key) end
return 1
"""
)

# KEYS[1] value key; ARGV: base, key. Returns 1 if a live memory was removed.
DELETE = (
    _COMMON
    + r"""
local base, key = ARGV[1], ARGV[2]
sweep(base, 16)
unindex(base, key)
return redis.call('DEL', KEYS[1])
"""
)

# ARGV: base, limit, scope ('' = none). Newest first: key, seq, payload triples.
RECENT = (
    _COMMON
    + r"""
local base, limit, scope = ARGV[1], tonumber(ARGV[2]), ARGV[3]
sweep(base, 0)
local zkey = base .. 'r'
if scope ~= '' then zkey = base .. 's:' .. scope end
local rows = redis.call('ZREVRANGE', zkey, 0, limit - 1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do out[#out + 1] = {rows[i], rows[i + 1]} end
if scope ~= '' then
  local seq = redis.call('ZSCORE', base .. 'r', scope)
  if seq then out[#out + 1] = {scope, seq} end
  table.sort(out, function(a, b) return tonumber(a[2]) > tonumber(b[2]) end)
end
local flat = {}
for i = 1, math.min(limit, #out) do
  local payload = redis.call('GET', base .. 'v:' .. out[i][1])
  if payload then
    flat[#flat + 1] = out[i][1]; flat[#flat + 1] = out[i][2]; flat[#flat + 1] = payload
  end
end
return flat
"""
)

# ARGV: base. Live memories in the partition.
SIZE = (
    _COMMON
    + r"""
sweep(ARGV[1], 0)
return redis.call('ZCARD', ARGV[1] .. 'r')
"""
)

# ARGV: base, tokens... Returns {docs, total_len, {term, df, term, df, ...} per token}.
STATS = (
    _COMMON
    + r"""
local base = ARGV[1]
sweep(base, 0)
local total = tonumber(redis.call('HGET', base .. 'n', 'len') or '0')
local out = {redis.call('ZCARD', base .. 'r'), total}
for i = 2, #ARGV do
  local tok = ARGV[i]
  local terms = redis.call('ZRANGEBYLEX', base .. 't', '[' .. tok, '[' .. tok .. '\255')
  local pairs_ = {}
  for _, term in ipairs(terms) do
    pairs_[#pairs_ + 1] = term
    pairs_[#pairs_ + 1] = redis.call('HLEN', base .. 'p:' .. term)
  end
  out[#out + 1] = pairs_
end
return out
"""
)

# ARGV: base, limit, scope ('' = none), avg_len, ntok, then per token in scoring order:
#   token, idf, tail (sum of upper bounds from this token on), nterms, terms...
# Returns key, score ('%.17g'), seq, payload for this partition's best `limit`.
SCORE = (
    _COMMON
    + r"""
local base, limit, scope, avg = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local ntok = tonumber(ARGV[5])
local toks, idfs, tails, exps = {}, {}, {}, {}
local at = 6
for t = 1, ntok do
  toks[t] = ARGV[at]; idfs[t] = tonumber(ARGV[at + 1]); tails[t] = tonumber(ARGV[at + 2])
  local n = tonumber(ARGV[at + 3])
  local terms = {}
  for j = 1, n do terms[j] = ARGV[at + 3 + j] end
  exps[t] = terms
  at = at + 4 + n
end

local function bm25(tf, len, idf)
  local norm
  if avg > 0 then norm = K1 * (1.0 - B + B * len / avg) else norm = K1 end
  return idf * tf * (K1 + 1.0) / (tf + norm)
end

local function starts(s, prefix) return string.sub(s, 1, #prefix) == prefix end

-- A document's own tf for a token, read from its index entry.
local function doc_tf(key, tok)
  local meta = redis.call('HGETALL', base .. 'd:' .. key)
  local tf, len = 0, 0
  for i = 1, #meta, 2 do
    local f = meta[i]
    if f == '#len' then len = tonumber(meta[i + 1])
    elseif f ~= '#seq' and starts(f, tok) then tf = tf + tonumber(meta[i + 1]) end
  end
  return tf, len
end

-- The `limit`-th best score in a table of scores (nil if fewer): a bounded insertion, not a sort.
local function cut_of(acc)
  local top = {}
  for _, s in pairs(acc) do
    if #top < limit or s > top[#top] then
      local i = #top + 1
      if i > limit then i = limit end
      while i > 1 and top[i - 1] < s do top[i] = top[i - 1]; i = i - 1 end
      top[i] = s
    end
  end
  return top[limit], top[#top]
end

local members, scored = nil, nil
if scope ~= '' then
  members = {}
  local count = 0
  for _, key in ipairs(redis.call('ZRANGE', base .. 's:' .. scope, 0, -1)) do
    members[key] = true; count = count + 1
  end
  if redis.call('EXISTS', base .. 'd:' .. scope) == 1 then
    members[scope] = true; count = count + 1
  end
  local cost = 0
  for t = 1, ntok do
    for _, term in ipairs(exps[t]) do cost = cost + redis.call('HLEN', base .. 'p:' .. term) end
  end
  if count <= cost then
    -- Small scope: score its documents from their own entries.
    local acc = {}
    for key in pairs(members) do
      local meta = redis.call('HGETALL', base .. 'd:' .. key)
      local len, score, hit = 0, 0.0, false
      local tfs = {}
      for i = 1, #meta, 2 do
        local f = meta[i]
        if f == '#len' then len = tonumber(meta[i + 1]) elseif f ~= '#seq' then
          for t = 1, ntok do
            if starts(f, toks[t]) then tfs[t] = (tfs[t] or 0) + tonumber(meta[i + 1]) end
          end
        end
      end
      for t = 1, ntok do
        if tfs[t] then score = score + bm25(tfs[t], len, idfs[t]); hit = true end
      end
      if hit then acc[key] = score end
    end
    scored = acc
  end
end

local acc, count = {}, 0
if scored then
  acc = scored
else
  for t = 1, ntok do
    if t > 1 and count >= limit and cut_of(acc) > tails[t] then
      for u = t, ntok do
        for key, score in pairs(acc) do
          local tf, len = doc_tf(key, toks[u])
          if tf > 0 then acc[key] = score + bm25(tf, len, idfs[u]) end
        end
      end
      break
    end
    local tf_sum, lens = {}, {}
    for _, term in ipairs(exps[t]) do
      local flat = redis.call('HGETALL', base .. 'p:' .. term)
      for i = 1, #flat, 2 do
        local key = flat[i]
        if not members or members[key] then
          local packed = tonumber(flat[i + 1])
          local tf = math.floor(packed / TF_SHIFT)
          tf_sum[key] = (tf_sum[key] or 0) + tf
          lens[key] = packed - tf * TF_SHIFT
        end
      end
    end
    for key, tf in pairs(tf_sum) do
      local prev = acc[key]
      if prev == nil then count = count + 1; prev = 0.0 end
      acc[key] = prev + bm25(tf, lens[key], idfs[t])
    end
  end
end

-- The best `limit` by score, ties by recency: find the cut, then fetch seqs for the tied.
local full, last = cut_of(acc)
local cut = full or last
if cut == nil then return {} end
local rows = {}
for key, s in pairs(acc) do
  if s >= cut then
    rows[#rows + 1] = {key, s, tonumber(redis.call('ZSCORE', base .. 'r', key))}
  end
end
table.sort(rows, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[3] > b[3]
end)
local out = {}
for i = 1, math.min(limit, #rows) do
  local payload = redis.call('GET', base .. 'v:' .. rows[i][1])
  if payload then
    out[#out + 1] = rows[i][1]
    out[#out + 1] = string.format('%.17g', rows[i][2])
    out[#out + 1] = string.format('%d', rows[i][3])
    out[#out + 1] = payload
  end
end
return out
"""
)
