"""The Lua scripts of jobs.py: every check-then-act on a job is one of them.

A job's hash holds its state (queued, running, done) and, once done, its result; the first
script to write `done` wins and every later one leaves it be. That is how a cancel racing a
completion leaves exactly one answer.
"""

from service import wire
from service.models import JobState
from service.store.keys import WORKER_GROUP

REPLY_STREAM_MAXLEN = 10_000
REPLY_STREAM_TTL_S = 3600
CANCELS_MAXLEN = 1000
CANCELS_TTL_S = 3600

QUEUED, RUNNING, DONE = JobState.QUEUED.value, JobState.RUNNING.value, JobState.DONE.value

# Sum of a lane's streams' lengths (one per tenant listed in the queues hash): its depth.
_LANE_DEPTH = """
local function lane_depth(queues, lane_prefix)
  local total = 0
  for _, tenant in ipairs(redis.call('HKEYS', queues)) do
    total = total + redis.call('XLEN', lane_prefix .. tenant)
  end
  return total
end
"""

# KEYS: [1] the tenant's stream in the lane, [2] the job's hash, [3] the set of the tenant's jobs
# waiting or running (which the job joins until it completes or is cancelled), [4] the queues
# hash, [5] the jobs-queued stream, [6..] the tenant's streams in every lane. ARGV: [1] the
# lane's depth limit, or 0 when the caller has already made room (a batch); [2] id, [3] payload,
# [4] reply_to, [5] enqueued_ms, [6] deadline_ms, [7] tenant; [8] its max_queued, or 0 (no
# limit, or room already made); [9] its queues entry (weight, max_running); [10] the lane's
# stream prefix; [11] '1' to list the tenant's streams and wake idle workers (a job alone; the
# last of a batch, whose jobs go in one pipeline). Returns 1 queued, 0 lane full, -1 past the
# tenant's quota. The job's record has no expiry while it waits or runs: completing or
# cancelling gives it one.
ENQUEUE = _LANE_DEPTH + f"""
local limit = tonumber(ARGV[1])
if limit > 0 and lane_depth(KEYS[4], ARGV[10]) >= limit then return 0 end
local quota = tonumber(ARGV[8])
if quota > 0 and redis.call('SCARD', KEYS[3]) >= quota then return -1 end
redis.call('XADD', KEYS[1], '*', '{wire.F_ID}', ARGV[2], '{wire.F_PAYLOAD}', ARGV[3],
           '{wire.F_REPLY_TO}', ARGV[4], '{wire.F_ENQUEUED_MS}', ARGV[5],
           '{wire.F_DEADLINE_MS}', ARGV[6], '{wire.F_TENANT}', ARGV[7])
redis.call('HSET', KEYS[2], '{wire.F_STATE}', '{QUEUED}', '{wire.F_TENANT}', ARGV[7])
redis.call('SADD', KEYS[3], ARGV[2])
if ARGV[11] == '1' then
  if redis.call('HSET', KEYS[4], ARGV[7], ARGV[9]) == 1 then  -- the tenant's first job
    for i = 6, #KEYS do
      redis.pcall('XGROUP', 'CREATE', KEYS[i], '{WORKER_GROUP}', '0', 'MKSTREAM')
    end
  end
  redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', '{wire.F_ID}', ARGV[2])
end
return 1
"""

# KEYS: the tenant's stream in the lane, the tenant's job set, the queues hash. Room for a batch
# of ARGV[1] jobs: 1, or 0 past the lane's depth (ARGV[2]), -1 past the tenant's quota (ARGV[3],
# 0: none). ARGV[4]: the lane's stream prefix.
ROOM = _LANE_DEPTH + """
if lane_depth(KEYS[3], ARGV[4]) + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('SCARD', KEYS[2]) + tonumber(ARGV[1]) > quota then return -1 end
return 1
"""

# A job a worker has just taken: dropped (acknowledged and deleted from its lane) if it was
# cancelled meanwhile, else marked running with the worker's cancel stream (KEYS[1]), where a
# later cancel is sent. ARGV[1]: the consumer group.
# Also part of the claim script (fair_share.py).
START_FUNCTION = f"""
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
START = START_FUNCTION + "return start(KEYS[2], ARGV[2], KEYS[3])\n"

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
