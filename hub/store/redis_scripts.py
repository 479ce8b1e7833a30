"""The Lua scripts behind every multi-key change of the Redis store.

A script runs atomically, so each change is all-or-nothing and its checks ("does the
stream still exist", "is this jti already queued") cannot race another replica. Scripts
get ``ARGV[1]`` = the key prefix and build names with :data:`~hub.store.redis_keys.LUA_KEYS`.
Numbers arrive as the strings Python wrote (``repr(float)``) and are stored unchanged:
Lua's own float formatting would round them.
"""

from __future__ import annotations

from hub.store.redis_keys import LUA_KEYS

# -- streams and subjects ---------------------------------------------------------------------
CREATE_STREAM = (
    LUA_KEYS
    + """
local sid, record, owner, mode, created = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('HSET', k_stream(sid), 'record', record, 'owner', owner, 'mode', mode, 'created_at', created)
redis.call('ZADD', K_STREAMS, created, sid)
redis.call('ZADD', k_owner(owner), created, sid)
if mode == 'ALL' then redis.call('ZADD', K_ALL_SUBJECTS, created, sid) end
return 1
"""
)

# A save of a stream deleted meanwhile changes nothing: a save never resurrects one.
SAVE_STREAM = (
    LUA_KEYS
    + """
local sid, record, owner, mode, created = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = k_stream(sid)
local old_owner = redis.call('HGET', key, 'owner')
if not old_owner then return 0 end
if old_owner ~= owner then redis.call('ZREM', k_owner(old_owner), sid) end
redis.call('HSET', key, 'record', record, 'owner', owner, 'mode', mode, 'created_at', created)
redis.call('ZADD', K_STREAMS, created, sid)
redis.call('ZADD', k_owner(owner), created, sid)
if mode == 'ALL' then
  redis.call('ZADD', K_ALL_SUBJECTS, created, sid)
else
  redis.call('ZREM', K_ALL_SUBJECTS, sid)
end
return 1
"""
)

# Everything of the stream goes: subjects and their index entries, every SET (pending or
# finished) with its attempts and trace entries, health and set errors. Audit stays.
DELETE_STREAM = (
    LUA_KEYS
    + """
local sid = ARGV[2]
local key = k_stream(sid)
local owner = redis.call('HGET', key, 'owner')
if not owner then return 0 end
redis.call('ZREM', K_STREAMS, sid)
redis.call('ZREM', k_owner(owner), sid)
redis.call('ZREM', K_ALL_SUBJECTS, sid)
redis.call('SREM', K_PENDING_STREAMS, sid)
for _, value in ipairs(redis.call('HVALS', k_subjects(sid))) do
  local entry = cjson.decode(value)
  for _, index_key in ipairs(entry.index) do
    redis.call('SREM', k_subject_index(index_key), entry.member)
  end
end
for _, jti in ipairs(redis.call('ZRANGE', k_sets(sid), 0, -1)) do
  local set_key = k_set(sid, jti)
  local f = redis.call('HMGET', set_key, 'txn', 'member', 'state')
  if f[1] then redis.call('ZREM', k_trace_txn(f[1]), f[2]) end
  redis.call('ZREM', k_trace_jti(jti), sid)
  if f[3] ~= 'pending' then redis.call('ZREM', K_FINISHED, f[2]) end
  redis.call('DEL', set_key, k_attempts(sid, jti))
end
redis.call('DEL', key, k_subjects(sid), k_queue(sid), k_control(sid), k_sets(sid),
           k_health(sid), k_set_errors(sid))
return 1
"""
)

# ARGV: prefix, sid, subject key, entry JSON, member, index keys...
PUT_SUBJECT = (
    LUA_KEYS
    + """
local sid, key, entry, member = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', k_stream(sid)) == 0 then return 0 end
local old = redis.call('HGET', k_subjects(sid), key)
if old then
  for _, index_key in ipairs(cjson.decode(old).index) do
    redis.call('SREM', k_subject_index(index_key), member)
  end
end
for i = 6, #ARGV do redis.call('SADD', k_subject_index(ARGV[i]), member) end
redis.call('HSET', k_subjects(sid), key, entry)
return 1
"""
)

REMOVE_SUBJECT = (
    LUA_KEYS
    + """
local sid, key = ARGV[2], ARGV[3]
local old = redis.call('HGET', k_subjects(sid), key)
if not old then return 0 end
local entry = cjson.decode(old)
for _, index_key in ipairs(entry.index) do
  redis.call('SREM', k_subject_index(index_key), entry.member)
end
redis.call('HDEL', k_subjects(sid), key)
return 1
"""
)

# -- health, records, leases, key documents ---------------------------------------------------
# ARGV: prefix, sid, health JSON
SAVE_HEALTH = (
    LUA_KEYS
    + """
if redis.call('EXISTS', k_stream(ARGV[2])) == 0 then return 0 end
redis.call('SET', k_health(ARGV[2]), ARGV[3])
return 1
"""
)

# ARGV: prefix, sid, kept, records (JSON) in the order they happened
RECORD_SET_ERRORS = (
    LUA_KEYS
    + """
local sid = ARGV[2]
if redis.call('EXISTS', k_stream(sid)) == 0 then return 0 end
for i = 4, #ARGV do redis.call('LPUSH', k_set_errors(sid), ARGV[i]) end
redis.call('LTRIM', k_set_errors(sid), 0, tonumber(ARGV[3]) - 1)
return 1
"""
)

# KEYS: lease. ARGV: holder, now, expires_at, ttl in ms (Redis forgets the key after it).
ACQUIRE_LEASE = """
local current = redis.call('HMGET', KEYS[1], 'holder', 'expires_at')
if current[1] and current[1] ~= ARGV[1] and tonumber(current[2]) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: lease. ARGV: holder
RELEASE_LEASE = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: document. ARGV: '1' when a current value is expected, that value, the new value.
COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""

# -- issuers and upstreams --------------------------------------------------------------------
# KEYS: issuers, issuers-version. ARGV: iss
REMOVE_ISSUER = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
"""

# KEYS: upstream, upstreams. ARGV: id, created_at, config, state
ADD_UPSTREAM = """
if redis.call('HSETNX', KEYS[1], 'config', ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: upstream. ARGV: state
SAVE_UPSTREAM_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
"""

# KEYS: upstream, upstreams. ARGV: id
REMOVE_UPSTREAM = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""
