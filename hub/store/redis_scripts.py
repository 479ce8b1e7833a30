"""The Lua scripts behind the Redis store's changes to streams, subjects and records.

A script runs atomically, so each change is all-or-nothing and its checks ("does the
stream still exist") cannot race another replica. Every key a script touches is in its
``KEYS``, all in one slot (``tests/store/test_redis_slots.py`` checks each call); a script
that must find keys while it runs gets the stream's slot prefix (``S``, the part up to
and including ``{s:<sid>}:``) and builds them from it, so they stay in that slot. The
``{hub}`` indexes are never touched here: the Python side updates them around the
script (``redis_keys``: add before, remove after). A script that changes a stream's record
or subjects PUBLISHes the stream id on the change channel (``C``) in the same step, so
every replica's cache of them (``redis_cache``) hears of it; classic PUBLISH names no key
and reaches every node of a cluster. Numbers arrive as the strings Python
wrote (``repr(float)``) and are stored unchanged: Lua's own float formatting would round
them.
"""

from __future__ import annotations

# -- streams ----------------------------------------------------------------------------------
# KEYS: stream. ARGV: record, owner, mode, created_at, force, C, stream id.
# Returns {0} when the stream is gone (a save never resurrects one), {1, old owner, old
# mode} once saved, and {2, old owner, old mode} without saving when the owner or mode
# changes and force is not '1': the caller updates the indexes first, then forces.
SAVE_STREAM = """
local old = redis.call('HMGET', KEYS[1], 'owner', 'mode')
if not old[1] then return {0} end
if ARGV[5] ~= '1' and (old[1] ~= ARGV[2] or old[2] ~= ARGV[3]) then return {2, old[1], old[2]} end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2], 'mode', ARGV[3], 'created_at', ARGV[4])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1, old[1], old[2]}
"""

# KEYS: stream, subjects, seq, queue, control, sets, finished, health, set-errors. ARGV: S,
# C, stream id.
# Everything of the stream goes: subjects, every SET (pending or finished) with its
# attempts, health and set errors (audit stays). Returns false when there was no stream,
# else a JSON object naming what the shared indexes hold for it, so the caller can remove
# those entries next: owner, subject members with their index keys, SETs with their txn.
DELETE_STREAM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return false end
local subjects, sets = {}, {}
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
  local entry = cjson.decode(value)
  subjects[#subjects + 1] = {entry.member, entry.index}
end
for _, jti in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  local set_key = ARGV[1] .. 'set:' .. jti
  local f = redis.call('HMGET', set_key, 'txn', 'member')
  sets[#sets + 1] = {jti, f[1] or false, f[2] or false}
  redis.call('DEL', set_key, ARGV[1] .. 'attempts:' .. jti, ARGV[1] .. 'remediation:' .. jti)
end
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return cjson.encode({owner = owner, subjects = subjects, sets = sets})
"""

# -- subjects ---------------------------------------------------------------------------------
# KEYS: stream, subjects. ARGV: subject key, entry JSON, C, stream id.
# Returns false when the stream does not exist (nothing stored), else the entry it
# replaced ('' when there was none), whose index entries the caller then removes.
PUT_SUBJECT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return old or ''
"""

# KEYS: subjects. ARGV: subject key, C, stream id. Returns the removed entry, or false.
REMOVE_SUBJECT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return old
"""

# -- health, records, leases, key documents ---------------------------------------------------
# KEYS: stream, health. ARGV: health JSON
SAVE_HEALTH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""

# KEYS: stream, set-errors. ARGV: kept, records (JSON) in the order they happened
RECORD_SET_ERRORS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
return 1
"""

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

# KEYS: the audit list, then the stream's own audit list (both in {hub}) if the record
# names a stream. ARGV: record JSON, then how many each list keeps, in KEYS' order.
APPEND_AUDIT = """
for i = 1, #KEYS do
  redis.call('LPUSH', KEYS[i], ARGV[1])
  redis.call('LTRIM', KEYS[i], 0, tonumber(ARGV[i + 1]) - 1)
end
return 1
"""

# -- issuers and upstreams (all in {hub}) -----------------------------------------------------
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
