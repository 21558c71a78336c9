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

# Jobs of one tenant queued in a lane, any number in one call. KEYS: [1] the tenant's stream in
# the lane, [2] the set of the tenant's jobs waiting or running (which each job joins until it
# completes or is cancelled), [3] the queues hash, [4] the jobs-queued stream, [5..] the
# tenant's streams in every lane. ARGV: [1] the lane's depth limit, or 0 when the caller has
# already made room; [2] the tenant's max_queued, or 0 (no limit, or room already made); [3] how
# many jobs to make room for (the whole batch's, which may come in several calls); [4] reply_to,
# [5] enqueued_ms, [6] deadline_ms, [7] tenant, [8] its queues entry (weight, max_running), [9]
# the lane's stream prefix, [10] the job hashes' prefix, [11] '1' to list the tenant's streams
# and wake idle workers (the last call of a batch); [12..] (id, payload) per job. Returns 1
# queued, 0 lane full, -1 past the tenant's quota, none queued then. A job's record has no
# expiry while it waits or runs: completing or cancelling gives it one.
ENQUEUE = _LANE_DEPTH + f"""
local count, limit, quota = tonumber(ARGV[3]), tonumber(ARGV[1]), tonumber(ARGV[2])
if limit > 0 and lane_depth(KEYS[3], ARGV[9]) + count > limit then return 0 end
if quota > 0 and redis.call('SCARD', KEYS[2]) + count > quota then return -1 end
for i = 12, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', '{wire.F_ID}', ARGV[i], '{wire.F_PAYLOAD}', ARGV[i + 1],
             '{wire.F_REPLY_TO}', ARGV[4], '{wire.F_ENQUEUED_MS}', ARGV[5],
             '{wire.F_DEADLINE_MS}', ARGV[6], '{wire.F_TENANT}', ARGV[7])
  redis.call('HSET', ARGV[10] .. ARGV[i], '{wire.F_STATE}', '{QUEUED}', '{wire.F_TENANT}', ARGV[7])
  redis.call('SADD', KEYS[2], ARGV[i])
end
if ARGV[11] == '1' then
  if redis.call('HSET', KEYS[3], ARGV[7], ARGV[8]) == 1 then  -- the tenant's first job
    for i = 5, #KEYS do
      redis.pcall('XGROUP', 'CREATE', KEYS[i], '{WORKER_GROUP}', '0', 'MKSTREAM')
    end
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '1', '*', '{wire.F_ID}', ARGV[#ARGV - 1])
end
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

# Jobs done, any number in one call (a worker sends those that end together, or with its next
# claim: fair_share.py). Per job, the four KEYS after KEYS[k0]: its hash, its lane, the reply
# stream (its lane when it has none), its tenant's job set; the four ARGV after ARGV[a0]: its
# result, entry id, id, '1' if it has a reply stream. Keeps each job's first result only (for
# `ttl` seconds); always retires its entry. Returns, per job, 1 if this result is the one kept,
# 0 if another was there first.
COMPLETE_FUNCTION = f"""
local function complete(k0, a0, ttl, group)
  local kept = {{}}
  for i = 0, (#KEYS - k0) / 4 - 1 do
    local k, a = k0 + 4 * i, a0 + 4 * i
    local job, lane, reply, job_set = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
    local result, entry_id, id, replies = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local first = redis.call('HGET', job, '{wire.F_STATE}') ~= '{DONE}'
    if first then
      redis.call('HSET', job, '{wire.F_STATE}', '{DONE}', '{wire.F_RESULT}', result)
      redis.call('EXPIRE', job, ttl)
      if replies == '1' then
        redis.call('XADD', reply, 'MAXLEN', '~', {REPLY_STREAM_MAXLEN}, '*',
                   '{wire.F_ID}', id, '{wire.F_RESULT}', result)
        redis.call('EXPIRE', reply, {REPLY_STREAM_TTL_S})
      end
    end
    redis.call('XACK', lane, group, entry_id)
    redis.call('XDEL', lane, entry_id)
    redis.call('SREM', job_set, id)
    kept[i + 1] = first and 1 or 0
  end
  return kept
end
"""

# KEYS: four per job (see complete). ARGV: [1] the results' TTL, [2] the consumer group, then
# four per job.
COMPLETE = COMPLETE_FUNCTION + "return complete(0, 2, ARGV[1], ARGV[2])\n"

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
