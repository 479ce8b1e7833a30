"""The Lua scripts behind the Redis store's queues: enqueue (also as part of an atomic
ingest), read, finish, retry and forget SETs. Conventions as in ``redis_scripts``."""

from __future__ import annotations

from hub.store.redis_keys import LUA_KEYS

# -- queues -----------------------------------------------------------------------------------
# Queues SETs given as 9 values each from ARGV[first]: sid, jti, member, jwt, type, txn,
# has_txn, control, queued_at. SETs for a stream deleted meanwhile are dropped; a jti the
# stream already has (pending or finished) keeps its place.
_ENQUEUE_FROM = """
local function enqueue_from(first)
  local added = 0
  for i = first, #ARGV, 9 do
    local sid, jti, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if redis.call('EXISTS', k_stream(sid)) == 1 and not redis.call('ZSCORE', k_sets(sid), jti) then
      local seq = redis.call('INCR', K_SEQ)
      local set_key = k_set(sid, jti)
      redis.call('HSET', set_key, 'jwt', ARGV[i + 3], 'type', ARGV[i + 4], 'control', ARGV[i + 7],
                 'queued_at', ARGV[i + 8], 'attempts', 0, 'next_at', '0', 'state', 'pending',
                 'seq', seq, 'member', member)
      if ARGV[i + 6] == '1' then
        redis.call('HSET', set_key, 'txn', ARGV[i + 5])
        redis.call('ZADD', k_trace_txn(ARGV[i + 5]), seq, member)
      end
      redis.call('ZADD', k_queue(sid), seq, jti)
      if ARGV[i + 7] == '1' then redis.call('ZADD', k_control(sid), seq, jti) end
      redis.call('ZADD', k_sets(sid), seq, jti)
      redis.call('ZADD', k_trace_jti(jti), seq, sid)
      redis.call('SADD', K_PENDING_STREAMS, sid)
      added = added + 1
    end
  end
  return added
end
"""

# ARGV: prefix, then the SETs (9 values each).
ENQUEUE = LUA_KEYS + _ENQUEUE_FROM + "return enqueue_from(2)\n"

# ARGV: prefix, receipt member, received_at, expires_at, window in ms, txn, then the SETs.
# A receipt still unexpired at received_at makes this a duplicate: nothing is stored.
INGEST = (
    LUA_KEYS
    + _ENQUEUE_FROM
    + """
local receipt_member, received, expires = ARGV[2], ARGV[3], ARGV[4]
local key = k_receipt(receipt_member)
local current = redis.call('HGET', key, 'expires_at')
if current and tonumber(current) > tonumber(received) then return 0 end
redis.call('DEL', key)
redis.call('HSET', key, 'received_at', received, 'expires_at', expires, 'txn', ARGV[6])
redis.call('PEXPIRE', key, ARGV[5])
redis.call('ZADD', K_RECEIPTS, expires, receipt_member)
enqueue_from(7)
return 1
"""
)

# ARGV: prefix, before, batch size. Forgets up to one batch of receipts; the caller loops.
FORGET_INGESTED = (
    LUA_KEYS
    + """
local members = redis.call('ZRANGEBYSCORE', K_RECEIPTS, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, receipt_member in ipairs(members) do
  redis.call('DEL', k_receipt(receipt_member))
  redis.call('ZREM', K_RECEIPTS, receipt_member)
end
return #members
"""
)

# ARGV: prefix, sid, limit, control_only. Returns 8 values per SET (jti first).
PENDING = (
    LUA_KEYS
    + """
local sid, limit = ARGV[2], tonumber(ARGV[3])
if limit <= 0 then return {} end
local zset = ARGV[4] == '1' and k_control(sid) or k_queue(sid)
local out = {}
for _, jti in ipairs(redis.call('ZRANGE', zset, 0, limit - 1)) do
  local f = redis.call('HMGET', k_set(sid, jti), 'jwt', 'type', 'txn', 'control', 'queued_at',
                       'attempts', 'next_at')
  out[#out + 1] = jti
  for j = 1, 7 do out[#out + 1] = f[j] end
end
return out
"""
)

# Depth and the head of the queue's queued_at, read together.
QUEUE_STATS = (
    LUA_KEYS
    + """
local sid = ARGV[2]
local head = redis.call('ZRANGE', k_queue(sid), 0, 0)
if #head == 0 then return {0, false} end
return {redis.call('ZCARD', k_queue(sid)), redis.call('HGET', k_set(sid, head[1]), 'queued_at')}
"""
)

_FINISH = """
local function finish(sid, jti, state, at)
  if redis.call('ZREM', k_queue(sid), jti) == 0 then return false end
  redis.call('ZREM', k_control(sid), jti)
  local set_key = k_set(sid, jti)
  redis.call('HSET', set_key, 'state', state, 'done_at', at)
  redis.call('ZADD', K_FINISHED, at, redis.call('HGET', set_key, 'member'))
  return true
end
local function forget_if_empty(sid)
  if redis.call('ZCARD', k_queue(sid)) == 0 then redis.call('SREM', K_PENDING_STREAMS, sid) end
end
"""

# ARGV: prefix, sid, state, at, bump attempts, n, n jtis, then 3 values per attempt:
# sid, jti, attempt JSON. Attempts of SETs the store does not have are dropped.
COMPLETE = (
    LUA_KEYS
    + _FINISH
    + """
local sid, state, at, bump, n = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local changed = 0
for i = 7, 6 + n do
  if finish(sid, ARGV[i], state, at) then
    if bump == '1' then redis.call('HINCRBY', k_set(sid, ARGV[i]), 'attempts', 1) end
    changed = changed + 1
  end
end
for i = 7 + n, #ARGV, 3 do
  if redis.call('EXISTS', k_set(ARGV[i], ARGV[i + 1])) == 1 then
    redis.call('RPUSH', k_attempts(ARGV[i], ARGV[i + 1]), ARGV[i + 2])
  end
end
forget_if_empty(sid)
return changed
"""
)

# ARGV: prefix, sid, at, keep_control
PURGE_PENDING = (
    LUA_KEYS
    + _FINISH
    + """
local sid, at, keep_control = ARGV[2], ARGV[3], ARGV[4] == '1'
local dropped = 0
for _, jti in ipairs(redis.call('ZRANGE', k_queue(sid), 0, -1)) do
  if not (keep_control and redis.call('ZSCORE', k_control(sid), jti)) then
    finish(sid, jti, 'dropped', at)
    dropped = dropped + 1
  end
end
forget_if_empty(sid)
return dropped
"""
)

# ARGV: prefix, sid, next_at
RESCHEDULE_PENDING = (
    LUA_KEYS
    + """
local sid = ARGV[2]
local jtis = redis.call('ZRANGE', k_queue(sid), 0, -1)
for _, jti in ipairs(jtis) do redis.call('HSET', k_set(sid, jti), 'next_at', ARGV[3]) end
return #jtis
"""
)

# ARGV: prefix, sid, jti, next_at, has_error, last_error, attempt JSON
RECORD_ATTEMPT = (
    LUA_KEYS
    + """
local set_key = k_set(ARGV[2], ARGV[3])
if redis.call('EXISTS', set_key) == 0 then return 0 end
redis.call('HINCRBY', set_key, 'attempts', 1)
redis.call('HSET', set_key, 'next_at', ARGV[4])
if ARGV[5] == '1' then
  redis.call('HSET', set_key, 'last_error', ARGV[6])
else
  redis.call('HDEL', set_key, 'last_error')
end
redis.call('RPUSH', k_attempts(ARGV[2], ARGV[3]), ARGV[7])
return 1
"""
)

# ARGV: prefix, before, batch size. Forgets up to one batch; the caller loops.
DELETE_FINISHED = (
    LUA_KEYS
    + """
local members = redis.call('ZRANGEBYSCORE', K_FINISHED, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(members) do
  local pair = cjson.decode(member)
  local sid, jti = pair[1], pair[2]
  local set_key = k_set(sid, jti)
  local txn = redis.call('HGET', set_key, 'txn')
  if txn then redis.call('ZREM', k_trace_txn(txn), member) end
  redis.call('ZREM', k_trace_jti(jti), sid)
  redis.call('ZREM', k_sets(sid), jti)
  redis.call('DEL', set_key, k_attempts(sid, jti))
  redis.call('ZREM', K_FINISHED, member)
end
return #members
"""
)
