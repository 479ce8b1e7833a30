"""The Lua scripts behind the Redis store's queues and ingest receipts: enqueue, read,
finish, retry and forget SETs; claim and finish a receipt. Conventions as in
``redis_scripts``: every key in ``KEYS`` (one slot), per-SET keys built from the stream's
slot prefix ``S`` (always ``ARGV[1]`` where a script needs it)."""

from __future__ import annotations

# -- queues -----------------------------------------------------------------------------------
# KEYS: stream, seq, queue, control, sets. ARGV: S, then 9 values per SET: jti, member, jwt,
# type, txn, has_txn, control, queued_at, order. Returns -1 (nothing stored) when the stream
# is gone, else how many were queued: a jti the stream already has (pending or finished)
# keeps its place, so replaying an enqueue changes nothing.
ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local added = 0
for i = 2, #ARGV, 9 do
  local jti = ARGV[i]
  if not redis.call('ZSCORE', KEYS[5], jti) then
    local seq = redis.call('INCR', KEYS[2])
    local set_key = ARGV[1] .. 'set:' .. jti
    redis.call('HSET', set_key, 'jwt', ARGV[i + 2], 'type', ARGV[i + 3], 'control', ARGV[i + 6],
               'queued_at', ARGV[i + 7], 'order', ARGV[i + 8], 'attempts', 0, 'next_at', '0',
               'state', 'pending', 'seq', seq, 'member', ARGV[i + 1])
    if ARGV[i + 5] == '1' then redis.call('HSET', set_key, 'txn', ARGV[i + 4]) end
    redis.call('ZADD', KEYS[3], seq, jti)
    if ARGV[i + 6] == '1' then redis.call('ZADD', KEYS[4], seq, jti) end
    redis.call('ZADD', KEYS[5], seq, jti)
    added = added + 1
  end
end
return added
"""

# KEYS: pending-streams, then one trace index key per entry (``{hub}``: one slot). ARGV: n,
# n stream ids for pending-streams, then member and score per trace key, in KEYS' order.
# The shared entries that lead to queued SETs, written before the SETs themselves (NX: an
# entry already there, from a replay, keeps its score).
INDEX_QUEUED = """
local n = tonumber(ARGV[1])
for j = 2, n + 1, 1000 do redis.call('SADD', KEYS[1], unpack(ARGV, j, math.min(j + 999, n + 1))) end
for i = 2, #KEYS do
  local a = n + 2 * i - 2
  redis.call('ZADD', KEYS[i], 'NX', ARGV[a + 1], ARGV[a])
end
return 1
"""

# KEYS: queue (or control). ARGV: S, limit. Returns 8 values per SET (jti first).
PENDING = """
local limit = tonumber(ARGV[2])
if limit <= 0 then return {} end
local out = {}
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - 1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'set:' .. jti, 'jwt', 'type', 'txn', 'control',
                       'queued_at', 'attempts', 'next_at')
  out[#out + 1] = jti
  for j = 1, 7 do out[#out + 1] = f[j] end
end
return out
"""

# KEYS: queue. ARGV: S. Depth and the head of the queue's queued_at, read together.
QUEUE_STATS = """
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then return {0, false} end
return {redis.call('ZCARD', KEYS[1]), redis.call('HGET', ARGV[1] .. 'set:' .. head[1], 'queued_at')}
"""

# Takes a jti off queue and control into finished (KEYS[1..3]) as state at time at.
_FINISH = """
local function finish(jti, state, at)
  if redis.call('ZREM', KEYS[1], jti) == 0 then return false end
  redis.call('ZREM', KEYS[2], jti)
  redis.call('HSET', ARGV[1] .. 'set:' .. jti, 'state', state, 'done_at', at)
  redis.call('ZADD', KEYS[3], at, jti)
  return true
end
"""

# KEYS: queue, control, finished. ARGV: S, state, at, bump attempts, n, n jtis, then 2
# values per attempt: jti, attempt JSON. Attempts of SETs the stream does not have are dropped.
COMPLETE = (
    _FINISH
    + """
local state, at, bump, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local changed = 0
for i = 6, 5 + n do
  if finish(ARGV[i], state, at) then
    if bump == '1' then redis.call('HINCRBY', ARGV[1] .. 'set:' .. ARGV[i], 'attempts', 1) end
    changed = changed + 1
  end
end
for i = 6 + n, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'set:' .. ARGV[i]) == 1 then
    redis.call('RPUSH', ARGV[1] .. 'attempts:' .. ARGV[i], ARGV[i + 1])
  end
end
return changed
"""
)

# KEYS: queue, control, finished. ARGV: S, at, keep_control
PURGE_PENDING = (
    _FINISH
    + """
local at, keep_control = ARGV[2], ARGV[3] == '1'
local dropped = 0
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not (keep_control and redis.call('ZSCORE', KEYS[2], jti)) then
    finish(jti, 'dropped', at)
    dropped = dropped + 1
  end
end
return dropped
"""
)

# KEYS: queue. ARGV: S, next_at
RESCHEDULE_PENDING = """
local jtis = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, jti in ipairs(jtis) do redis.call('HSET', ARGV[1] .. 'set:' .. jti, 'next_at', ARGV[2]) end
return #jtis
"""

# KEYS: set, attempts. ARGV: next_at, has_error, last_error, attempt JSON
RECORD_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'next_at', ARGV[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'last_error', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'last_error')
end
redis.call('RPUSH', KEYS[2], ARGV[4])
return 1
"""

# KEYS: stream (it routes the call to the stream's slot S). ARGV: S, cap, then pairs (jti, receipt JSON).
# Keeps each receipt whose SET the stream holds (pending or finished), at most ``cap`` per
# SET (the newest); returns how many were kept.
RECORD_RECEIPTS = """
local kept = 0
for i = 3, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'set:' .. ARGV[i]) == 1 then
    local key = ARGV[1] .. 'remediation:' .. ARGV[i]
    redis.call('RPUSH', key, ARGV[i + 1])
    redis.call('LTRIM', key, -tonumber(ARGV[2]), -1)
    kept = kept + 1
  end
end
return kept
"""

# KEYS: stream, finished, sets, queue. ARGV: S, before, batch size.
# Forgets up to one batch of the stream's SETs that finished before ``before``; the caller
# loops while a full batch comes back. Returns {stream exists, queue depth, then 3 values
# per forgotten SET: jti, txn or '', member}: the caller removes their trace entries and
# repairs the stream's shared index entries from the first two.
TRIM_FINISHED = """
local out = {redis.call('EXISTS', KEYS[1]), redis.call('ZCARD', KEYS[4])}
local jtis = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, jti in ipairs(jtis) do
  local set_key = ARGV[1] .. 'set:' .. jti
  local f = redis.call('HMGET', set_key, 'txn', 'member')
  out[#out + 1] = jti
  out[#out + 1] = f[1] or ''
  out[#out + 1] = f[2] or ''
  redis.call('DEL', set_key, ARGV[1] .. 'attempts:' .. jti, ARGV[1] .. 'remediation:' .. jti)
  redis.call('ZREM', KEYS[3], jti)
  redis.call('ZREM', KEYS[2], jti)
end
return out
"""

# -- ingest receipts --------------------------------------------------------------------------
# KEYS: receipt. ARGV: received_at, expires_at, window in ms, txn, the SETs to queue (JSON).
# Step one of an ingest (``redis_ingest``). An unexpired receipt makes this a duplicate:
# {0} when its fan-out is done, {2, its SETs} while it is claimed but not done (its
# claimer crashed, or is still queuing): the caller replays them. Else claims it: {1}.
CLAIM_RECEIPT = """
local current = redis.call('HMGET', KEYS[1], 'expires_at', 'state', 'sets')
if current[1] and tonumber(current[1]) > tonumber(ARGV[1]) then
  if current[2] == 'done' then return {0} end
  return {2, current[3]}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'received_at', ARGV[1], 'expires_at', ARGV[2], 'txn', ARGV[4],
           'state', 'claimed', 'sets', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
"""

# KEYS: receipt. Step three: the fan-out is queued; the SETs need not be kept any longer.
FINISH_RECEIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done')
redis.call('HDEL', KEYS[1], 'sets')
return 1
"""

# KEYS: receipt. ARGV: before. Forgets it if it expired before ``before`` (one claimed
# again since, with a later expiry, stays).
FORGET_RECEIPT = """
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if expires and tonumber(expires) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: ingested. ARGV: before, members. Drops the members still scored before ``before``
# (one whose receipt was claimed again meanwhile has a later score and stays).
FORGET_RECEIPT_ENTRIES = """
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < tonumber(ARGV[1]) then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"""
