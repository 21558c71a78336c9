"""The claim script: the one decision of which jobs a worker takes, lane by lane, tenant by
tenant, sharing the workers between tenants by weight.

Each tenant's jobs wait in a stream of their own in each lane (Keys.jobs(lane, tenant)); the
hash Keys.queues lists the tenants that have streams, with their weight and max_running. A claim
counts, per tenant and lane, the jobs waiting (stream length less pending entries) and running
(the consumer group's pending entries: a job is pending from its claim to its completion,
whichever worker holds it, so the count cannot drift; a reclaim moves it, a completion, dead
letter or dropped cancel ends it). Then it fills the worker's free room from the interactive
lane first and from the bulk lane with what is left (so bulk work takes exactly the capacity
interactive work does not use), each lane up to the worker's cap for it, and within a lane
gives the room out one job at a time by stride scheduling: of the tenants with work waiting
there and running jobs under their max_running, the one with the smallest virtual time gets
the next job, and its virtual time moves on by 1/weight. A tenant that was idle starts from
the deployment's virtual time (the last job's), so an idle spell earns no credit and costs no
penalty. Backlogged tenants of weights 1 and 3 thus get jobs 1:3, and a small batch queued
behind a large one waits for its share, not for the large one's end.

Each chosen stream is read once (XREADGROUP COUNT n) and each job read is started (or dropped,
if cancelled) as the lane claim did, so the cost is one read per tenant served plus two counts
per tenant and lane, whatever the room.
"""

from service import wire
from service.models import Priority
from service.store.job_scripts import COMPLETE_FUNCTION, START_FUNCTION

# The lanes, in the order workers serve them: one stream each per tenant (Keys.jobs(lane, tenant)).
LANES = (Priority.INTERACTIVE, Priority.BULK)

VIRTUAL_TIME = "~"  # the pass hash's field of the deployment's own virtual time; no tenant
# name starts with it (tenants.NAME_PATTERN)


def queue_entry(weight: int, max_running: int | None) -> str:
    """A tenant's value in the Keys.queues hash, as the claim script reads it."""
    return f"{weight} {max_running or 0}"


# KEYS: [1] the worker's cancel stream, [2] the queues hash, [3] the pass hash, [4..] four per job
# the worker answers with this claim (see complete in job_scripts.py). ARGV: [1] group,
# [2] consumer, [3] room, [4] the prefix of a job hash's key, [5..LAST_LANE] per lane in the
# order they are served, its stream prefix and the most jobs it may fill of the room; then the
# answered jobs' results' TTL and four per job. The answers are published first, so that the
# jobs they end count as running no more. Returns {entries read, {{lane index (0-based), entry
# id, fields}, ...}, per lane 1 if jobs were left waiting there (for want of room, or past their
# tenant's max_running), else 0, per job answered 1 if its result is the one kept}.
LAST_LANE = 4 + 2 * len(LANES)
CLAIM = START_FUNCTION + COMPLETE_FUNCTION + f"""
local kept = complete(3, {LAST_LANE} + 1, ARGV[{LAST_LANE} + 1], ARGV[1])
local room = tonumber(ARGV[3])
local entries = redis.call('HGETALL', KEYS[2])
local names, weight, cap, running, waiting = {{}}, {{}}, {{}}, {{}}, {{}}
for i = 1, #entries, 2 do
  local tenant = entries[i]
  local w, m = string.match(entries[i + 1], '^(%d+) (%d+)$')
  names[#names + 1] = tenant
  weight[tenant], cap[tenant], running[tenant] = tonumber(w), tonumber(m), 0
end
for lane = 5, {LAST_LANE}, 2 do
  waiting[lane] = {{}}
  for _, tenant in ipairs(names) do
    local stream = ARGV[lane] .. tenant
    local pending = redis.pcall('XPENDING', stream, ARGV[1])
    if type(pending) == 'table' then
      running[tenant] = running[tenant] + pending[1]
      waiting[lane][tenant] = redis.call('XLEN', stream) - pending[1]
    else  -- the group is gone (Redis lost it): made again, served from the next claim on
      redis.pcall('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
      waiting[lane][tenant] = 0
    end
  end
end
local stored = redis.call('HMGET', KEYS[3], '{VIRTUAL_TIME}', unpack(names))
local now = tonumber(stored[1] or '0')
local pass, moved = {{}}, {{}}
for i, tenant in ipairs(names) do
  pass[tenant] = math.max(tonumber(stored[i + 1] or '0'), now)
end
local read, taken = 0, {{}}
for lane = 5, {LAST_LANE}, 2 do
  local given = {{}}
  for _ = 1, math.min(room, tonumber(ARGV[lane + 1])) do
    local best = nil
    for _, t in ipairs(names) do
      if waiting[lane][t] > 0 and (cap[t] == 0 or running[t] < cap[t])
          and (best == nil or pass[t] < pass[best]) then
        best = t
      end
    end
    if best == nil then break end
    now = pass[best]
    pass[best] = pass[best] + 1 / weight[best]
    waiting[lane][best], running[best] = waiting[lane][best] - 1, running[best] + 1
    given[best] = (given[best] or 0) + 1
    room = room - 1
  end
  for tenant, count in pairs(given) do
    local stream = ARGV[lane] .. tenant
    local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', count,
                             'STREAMS', stream, '>')
    for _, entry in ipairs(reply and reply[1][2] or {{}}) do
      read = read + 1
      local fields, job_id = entry[2], ''
      for i = 1, #fields, 2 do
        if fields[i] == '{wire.F_ID}' then job_id = fields[i + 1] end
      end
      if start(stream, entry[1], ARGV[4] .. job_id) == 1 then
        taken[#taken + 1] = {{(lane - 5) / 2, entry[1], fields}}
      end
    end
    moved[#moved + 1] = tenant
    moved[#moved + 1] = tostring(pass[tenant])
  end
end
local left = {{}}
for lane = 5, {LAST_LANE}, 2 do
  local any = 0
  for _, tenant in ipairs(names) do
    if waiting[lane][tenant] > 0 then any = 1 end
  end
  left[#left + 1] = any
end
if read > 0 then
  moved[#moved + 1] = '{VIRTUAL_TIME}'
  moved[#moved + 1] = tostring(now)
  redis.call('HSET', KEYS[3], unpack(moved))
end
return {{read, taken, left, kept}}
"""
