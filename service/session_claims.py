"""Warm containers kept for sessions, offered in Redis by the workers holding them and claimed
by API processes as sessions open.

A claim is one script: it checks the cluster-wide cap, takes a warm container of the first
candidate worker that has one, records the session as open on it, and queues the worker's
`bind` call, which makes the container the session's. Opening then waits for neither a worker
nor a container: the session's first call waits for the bind, a few milliseconds at most.
"""

from redis import asyncio as aioredis

from service import wire
from service.keys import Keys
from service.models import SessionState
from service.queue import SESSION_CALLS_MAXLEN, SESSION_CALLS_TTL_S, translate_errors

FULL = -1  # the cluster-wide cap is reached
TENANT_FULL = -2  # the tenant's cap is reached
OFFER_TTL_S = 3600  # a dead worker's offers go with this; API processes skip dead workers anyway

# KEYS: everyone's open sessions, the session's record, its tenant's open sessions, then for each
# candidate worker its offers and its call stream. ARGV: see WarmClaims.claim.
_CLAIM = f"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {FULL} end
local quota = tonumber(ARGV[10])
if quota >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= quota then return {TENANT_FULL} end
end
local candidates = tonumber(ARGV[11])
for j = 0, candidates - 1 do
  local container = redis.call('LPOP', KEYS[4 + 2 * j])
  if container then
    local worker = ARGV[12 + j]
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
    redis.call('HSET', KEYS[2], 'state', '{SessionState.OPEN}', 'worker', worker,
               'container', container, unpack(ARGV, 12 + candidates))
    redis.call('EXPIRE', KEYS[2], ARGV[5])
    local payload = '{{"container":"' .. container .. '",' .. string.sub(ARGV[9], 2)
    redis.call('XADD', KEYS[5 + 2 * j], 'MAXLEN', '~', ARGV[6], '*',
               '{wire.F_OP}', '{wire.OP_BIND}', '{wire.F_SESSION}', ARGV[4], '{wire.F_ID}', ARGV[8],
               '{wire.F_PAYLOAD}', payload, '{wire.F_REPLY_TO}', '')
    redis.call('EXPIRE', KEYS[5 + 2 * j], ARGV[7])
    return {{worker, container}}
  end
end
return 0
"""


class WarmClaims:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._claim = redis.register_script(_CLAIM)

    # --- the worker's side ---------------------------------------------------------------------

    async def offer(self, worker_id: str, container_id: str) -> None:
        key = self.keys.session_warm(worker_id)
        with translate_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, container_id)
                pipe.expire(key, OFFER_TTL_S)
                await pipe.execute()

    async def withdraw(self, worker_id: str, container_id: str) -> bool:
        """Take back an offer; False if it was claimed meanwhile."""
        with translate_errors():
            return bool(await self.redis.lrem(self.keys.session_warm(worker_id), 0, container_id))

    async def withdraw_all(self, worker_id: str) -> None:
        with translate_errors():
            await self.redis.delete(self.keys.session_warm(worker_id))

    # --- the API's side ------------------------------------------------------------------------

    async def claim(self, session_id: str, tenant: str, candidates: list[str], cap: int,
                    tenant_cap: int | None, expires_ms: float, record_ttl_s: int,
                    fields: dict[str, str | int | float], payload: bytes) -> tuple[str, str] | int:
        """(worker, container) claimed for session_id, 0 if no candidate has a warm container,
        FULL if `cap` sessions are open, TENANT_FULL if `tenant_cap` of the tenant's are."""
        keys = [self.keys.sessions, self.keys.session(session_id), self.keys.tenant_sessions(tenant)]
        for worker_id in candidates:
            keys += [self.keys.session_warm(worker_id), self.keys.session_calls(worker_id)]
        flat = [part for pair in fields.items() for part in pair]
        with translate_errors():
            found = await self._claim(keys=keys, args=[
                wire.now_ms(), cap, expires_ms, session_id, record_ttl_s, SESSION_CALLS_MAXLEN,
                SESSION_CALLS_TTL_S, session_id, payload, -1 if tenant_cap is None else tenant_cap,
                len(candidates), *candidates, *flat])
        if isinstance(found, list):
            return found[0].decode(), found[1].decode()
        return int(found)
