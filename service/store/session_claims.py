"""Warm containers kept for sessions, offered in Redis by the workers holding them and claimed
by API processes as sessions open.

A claim is one script for every session an API process is opening at that moment: for each in
turn it checks the cluster-wide and the tenant's caps, takes a warm container of the live worker
(by its heartbeat) that offers the most, records the session as open on it, and queues the
worker's `bind` call, which makes the container the session's. Opening then waits for neither a
worker nor a container: the session's first call waits for the bind, a few milliseconds at most.
"""

from dataclasses import dataclass

from redis import asyncio as aioredis

from service import wire
from service.models import SessionState
from service.store.errors import translate_errors
from service.store.keys import Keys
from service.store.session_calls import SESSION_CALLS_MAXLEN, SESSION_CALLS_TTL_S

FULL = -1  # the cluster-wide cap is reached
TENANT_FULL = -2  # the tenant's cap is reached
OFFER_TTL_S = 3600  # a dead worker's offers go with this; API processes skip dead workers anyway

# KEYS[1] everyone's open sessions, KEYS[2] the workers' heartbeats; then for session i (from 0)
# KEYS[3 + 2i] its record and KEYS[4 + 2i] its tenant's open sessions. ARGV: now (ms), the
# cluster-wide cap, the oldest live heartbeat (ms), the prefixes of the workers' offers and call
# streams, the call streams' length and TTL, then per session (see WarmClaims.claim): its id, its
# tenant's cap (-1: none), its expiry (ms), its record's TTL, its bind payload, the number of its
# record's field names and values, and those.
_CLAIM = f"""
local now = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local offering, warm = {{}}, {{}}
for _, worker in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[3], '+inf')) do
  local count = redis.call('LLEN', ARGV[4] .. worker)
  if count > 0 then
    table.insert(offering, worker)
    warm[worker] = count
  end
end
local function richest()
  local best, most = nil, 0
  for _, worker in ipairs(offering) do
    if warm[worker] > most then best, most = worker, warm[worker] end
  end
  return best
end
local function claim(i, a)
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {FULL} end
  local tenant = KEYS[4 + 2 * i]
  local quota = tonumber(ARGV[a + 1])
  if quota >= 0 then
    redis.call('ZREMRANGEBYSCORE', tenant, '-inf', now)
    if redis.call('ZCARD', tenant) >= quota then return {TENANT_FULL} end
  end
  local worker = richest()
  if not worker then return 0 end
  local container = redis.call('LPOP', ARGV[4] .. worker)
  warm[worker] = warm[worker] - 1
  local session = ARGV[a]
  redis.call('ZADD', KEYS[1], ARGV[a + 2], session)
  redis.call('ZADD', tenant, ARGV[a + 2], session)
  local record = KEYS[3 + 2 * i]
  redis.call('HSET', record, 'state', '{SessionState.OPEN}', 'worker', worker,
             'container', container, unpack(ARGV, a + 6, a + 5 + tonumber(ARGV[a + 5])))
  redis.call('EXPIRE', record, ARGV[a + 3])
  local calls = ARGV[5] .. worker
  local payload = '{{"container":"' .. container .. '",' .. string.sub(ARGV[a + 4], 2)
  redis.call('XADD', calls, 'MAXLEN', '~', ARGV[6], '*',
             '{wire.F_OP}', '{wire.OP_BIND}', '{wire.F_SESSION}', session, '{wire.F_ID}', session,
             '{wire.F_PAYLOAD}', payload, '{wire.F_REPLY_TO}', '')
  redis.call('EXPIRE', calls, ARGV[7])
  return {{worker, container}}
end
local results, a = {{}}, 8
for i = 0, (#KEYS - 2) / 2 - 1 do
  table.insert(results, claim(i, a))
  a = a + 6 + tonumber(ARGV[a + 5])
end
return results
"""


@dataclass(frozen=True)
class Claim:
    """A session to open on a warm container: its record's fields and its bind call's payload."""

    session_id: str
    tenant: str
    tenant_cap: int | None
    expires_ms: float
    record_ttl_s: int
    fields: dict[str, str | int | float]
    payload: bytes


class WarmClaims:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self._redis = redis
        self.keys = keys
        self._claim = redis.register_script(_CLAIM)

    # --- the worker's side ---------------------------------------------------------------------

    async def offer(self, worker_id: str, container_id: str) -> None:
        key = self.keys.session_warm(worker_id)
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, container_id)
                pipe.expire(key, OFFER_TTL_S)
                await pipe.execute()

    async def withdraw(self, worker_id: str, container_id: str) -> bool:
        """Take back an offer; False if it was claimed meanwhile."""
        with translate_errors():
            return bool(await self._redis.lrem(self.keys.session_warm(worker_id), 0, container_id))

    async def withdraw_all(self, worker_id: str) -> None:
        with translate_errors():
            await self._redis.delete(self.keys.session_warm(worker_id))

    # --- the API's side ------------------------------------------------------------------------

    async def claim(self, claims: list[Claim], cap: int,
                    live_since_ms: float) -> list[tuple[str, str] | int]:
        """For each claim in turn: (worker, container) claimed for it, 0 if no worker whose last
        heartbeat is after live_since_ms offers a warm container, FULL if `cap` sessions are
        open, TENANT_FULL if its tenant's cap of the tenant's are."""
        keys = [self.keys.sessions, self.keys.workers]
        args: list[str | int | float | bytes] = [
            wire.now_ms(), cap, live_since_ms, self.keys.session_warm_prefix,
            self.keys.session_calls_prefix, SESSION_CALLS_MAXLEN, SESSION_CALLS_TTL_S]
        for one in claims:
            keys += [self.keys.session(one.session_id), self.keys.tenant_sessions(one.tenant)]
            flat = [part for pair in one.fields.items() for part in pair]
            args += [one.session_id, -1 if one.tenant_cap is None else one.tenant_cap,
                     one.expires_ms, one.record_ttl_s, one.payload, len(flat), *flat]
        with translate_errors():
            found = await self._claim(keys=keys, args=args)
        return [(r[0].decode(), r[1].decode()) if isinstance(r, list) else int(r) for r in found]
