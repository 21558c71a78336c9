"""The Lua scripts of service/queue.py: every check-then-act on a job is one of them.

A job's hash holds its state (queued, running, done) and, once done, its result; the first
script to write `done` wins and every later one leaves it be. That is how a cancel racing a
completion leaves exactly one answer.
"""

from service import wire
from service.models import JobState

REPLY_STREAM_MAXLEN = 10_000
REPLY_STREAM_TTL_S = 3600
CANCELS_MAXLEN = 1000
CANCELS_TTL_S = 3600

QUEUED, RUNNING, DONE = JobState.QUEUED.value, JobState.RUNNING.value, JobState.DONE.value

# KEYS: the lane's stream, the job's hash, the set of the tenant's jobs waiting or running
# (which the job joins until it completes or is cancelled). ARGV[1]: the lane's depth limit, or
# 0 when the caller has already made room (a batch); ARGV[8]: the tenant's max_queued, or 0 (no
# limit, or room already made). Returns 1 queued, 0 lane full, -1 past the tenant's quota.
# The job's record has no expiry while it waits or runs: completing or cancelling gives it one.
ENQUEUE = f"""
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return 0 end
local quota = tonumber(ARGV[8])
if quota > 0 and redis.call('SCARD', KEYS[3]) >= quota then return -1 end
redis.call('XADD', KEYS[1], '*', '{wire.F_ID}', ARGV[2], '{wire.F_PAYLOAD}', ARGV[3],
           '{wire.F_REPLY_TO}', ARGV[4], '{wire.F_ENQUEUED_MS}', ARGV[5],
           '{wire.F_DEADLINE_MS}', ARGV[6], '{wire.F_TENANT}', ARGV[7])
redis.call('HSET', KEYS[2], '{wire.F_STATE}', '{QUEUED}', '{wire.F_TENANT}', ARGV[7])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# KEYS: the lane, the tenant's job set. Room for a batch of ARGV[1] jobs: 1, or 0 past the
# lane's depth (ARGV[2]), -1 past the tenant's quota (ARGV[3], 0: none).
ROOM = """
if redis.call('XLEN', KEYS[1]) + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('SCARD', KEYS[2]) + tonumber(ARGV[1]) > quota then return -1 end
return 1
"""

# A job a worker has just taken: dropped (acknowledged and deleted from its lane) if it was
# cancelled meanwhile, else marked running with the worker's cancel stream (KEYS[1]), where a
# later cancel is sent. ARGV[1]: the consumer group.
_START_FUNCTION = f"""
local function start(stream, entry_id, job_key)
  if redis.call('HGET', job_key, '{wire.F_STATE}') == '{DONE}' then
    redis.call('XACK', stream, ARGV[1], entry_id)
    redis.call('XDEL', stream, entry_id)
    return 0
  end
  redis.call('HSET', job_key, '{wire.F_STATE}', '{RUNNING}', '{wire.F_CANCEL_TO}', KEYS[1])
  return 1
end
"""

# KEYS: the worker's cancel stream, the job's lane, the job's hash. ARGV: group, entry id.
# 1: run it; 0: dropped, it was cancelled.
START = _START_FUNCTION + "return start(KEYS[2], ARGV[2], KEYS[3])\n"

# The one claim decision. KEYS: the worker's cancel stream, then the lanes in the order they are
# served. Each lane is read only for the room the lanes before it left, so bulk jobs take
# exactly the capacity interactive jobs do not use. ARGV: group, consumer, room, the prefix of a
# job hash's key. Returns {entries read, {{lane index (0-based), entry id, fields}, ...}}: the
# jobs to run (cancelled ones read are dropped here).
CLAIM = _START_FUNCTION + f"""
local room = tonumber(ARGV[3])
local read = 0
local taken = {{}}
for lane = 2, #KEYS do
  if room <= 0 then break end
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', room,
                           'STREAMS', KEYS[lane], '>')
  if reply then
    for _, entry in ipairs(reply[1][2]) do
      read = read + 1
      local fields = entry[2]
      local job_id = ''
      for i = 1, #fields, 2 do
        if fields[i] == '{wire.F_ID}' then job_id = fields[i + 1] end
      end
      if start(KEYS[lane], entry[1], ARGV[4] .. job_id) == 1 then
        taken[#taken + 1] = {{lane - 2, entry[1], fields}}
        room = room - 1
      end
    end
  end
end
return {{read, taken}}
"""

# KEYS: the job's hash, its lane, the reply stream, the tenant's job set. Keeps the first result
# only; always retires the entry.
COMPLETE = f"""
local first = redis.call('HGET', KEYS[1], '{wire.F_STATE}') ~= '{DONE}'
if first then
  redis.call('HSET', KEYS[1], '{wire.F_STATE}', '{DONE}', '{wire.F_RESULT}', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[6] == '1' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', {REPLY_STREAM_MAXLEN}, '*',
               '{wire.F_ID}', ARGV[5], '{wire.F_RESULT}', ARGV[1])
    redis.call('EXPIRE', KEYS[3], {REPLY_STREAM_TTL_S})
  end
end
redis.call('XACK', KEYS[2], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[5])
if first then return 1 end
return 0
"""

# KEYS: the job's lane, its hash. A fresh entry at the lane's tail, the old one retired.
REQUEUE = f"""
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], '{wire.F_STATE}') == '{RUNNING}' then
  redis.call('HSET', KEYS[2], '{wire.F_STATE}', '{QUEUED}')
end
return 1
"""

# KEYS: the job's hash, the metrics hash, the tenant's job set. ARGV: the `cancelled` result, its
# TTL, the job id, the cancelled-jobs counter's field. A job not yet done is done now, with that
# result (so a later completion is ignored), and leaves its tenant's set; if it runs, its worker
# is told on its cancel stream. Returns the state the job had: queued or running (cancelled
# now), done (left be), '' (unknown).
CANCEL = f"""
local state = redis.call('HGET', KEYS[1], '{wire.F_STATE}')
if not state then return '' end
if state == '{DONE}' then return state end
redis.call('HSET', KEYS[1], '{wire.F_STATE}', '{DONE}', '{wire.F_RESULT}', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('SREM', KEYS[3], ARGV[3])
local worker = redis.call('HGET', KEYS[1], '{wire.F_CANCEL_TO}')
if state == '{RUNNING}' and worker then
  redis.call('XADD', worker, 'MAXLEN', '~', {CANCELS_MAXLEN}, '*', '{wire.F_ID}', ARGV[3])
  redis.call('EXPIRE', worker, {CANCELS_TTL_S})
end
return state
"""
