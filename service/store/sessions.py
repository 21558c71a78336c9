"""The session registry in Redis: a hash per session (its state, owner worker, limits and use)
and sorted sets of the open ones, everyone's and each tenant's, for the caps. API processes and
workers alike change a record only through these scripts, each one check-then-act.
"""

from redis import asyncio as aioredis

from service import wire
from service.models import SessionInfo, SessionState
from service.store.errors import translate_errors
from service.store.keys import Keys

RECORD_GRACE_S = 60.0  # an open session's record outlives its idle TTL by this much
Record = dict[str, str | int | float]

# Every script keeps KEYS[3], the tenant's open sessions, as KEYS[1], everyone's, is kept.

# Admit a session if fewer than the cap are open, and fewer than the tenant's cap ARGV[6] of its
# own (-1: none), forgetting those whose time ran out. 1, or 0 past the cap, -1 past the tenant's.
_RESERVE = f"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local quota = tonumber(ARGV[6])
if quota >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[3]) >= quota then return -1 end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[2], 'state', '{SessionState.OPENING}', unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# The worker's container is ready: it records itself as the owner, unless the caller gave up.
_ACTIVATE = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPENING}' then return 0 end
redis.call('HSET', KEYS[2], 'state', '{SessionState.OPEN}', 'last_used_ms', ARGV[1],
           'worker', ARGV[5], 'container', ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return redis.call('HGETALL', KEYS[2])
"""

# A call ended: the session was used now (if it is still open).
_TOUCH = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPEN}' then return 0 end
redis.call('HSET', KEYS[2], 'last_used_ms', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# The session is over (first word wins); its record stays a while to say how it ended.
_END = f"""
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= '{SessionState.OPENING}' and state ~= '{SessionState.OPEN}' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'message', ARGV[2], 'ended_ms', ARGV[4])
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# An open request that failed: forget it as if it never was.
_DISCARD = f"""
if redis.call('HGET', KEYS[2], 'state') ~= '{SessionState.OPENING}' then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


class SessionRegistry:
    def __init__(self, redis: aioredis.Redis, keys: Keys, ended_ttl_s: int):
        self._redis = redis
        self.keys = keys
        self.ended_ttl_s = ended_ttl_s
        self._reserve = redis.register_script(_RESERVE)
        self._activate = redis.register_script(_ACTIVATE)
        self._touch = redis.register_script(_TOUCH)
        self._end = redis.register_script(_END)
        self._discard = redis.register_script(_DISCARD)

    def _keys(self, session_id: str, tenant: str) -> list[str]:
        return [self.keys.sessions, self.keys.session(session_id),
                self.keys.tenant_sessions(tenant)]

    async def reserve(self, session_id: str, tenant: str, fields: Record, now: float,
                      open_wait_s: float, cap: int, tenant_cap: int | None) -> int:
        """Record a session of `tenant` being opened (its record `fields`, its owner's among
        them) for up to open_wait_s: 1; 0 if `cap` sessions are open, -1 if `tenant_cap` of
        the tenant's are."""
        flat = [part for pair in fields.items() for part in pair]
        with translate_errors():
            return int(await self._reserve(
                keys=self._keys(session_id, tenant),
                args=[now, cap, now + open_wait_s * 1000, session_id, round(open_wait_s),
                      -1 if tenant_cap is None else tenant_cap, *flat]))

    async def activate(self, session_id: str, worker_id: str, idle_ttl_s: float,
                       tenant: str, container_id: str) -> SessionInfo | None:
        """The owner's container is ready: the session's record now; None if the session is no
        longer being opened."""
        now = wire.now_ms()
        with translate_errors():
            found = await self._activate(
                keys=self._keys(session_id, tenant),
                args=[now, now + idle_ttl_s * 1000, session_id, record_ttl_s(idle_ttl_s),
                      worker_id, container_id])
        if not found:
            return None
        return session_info(session_id, dict(zip(found[::2], found[1::2], strict=True)))

    async def touch(self, session_id: str, idle_ttl_s: float, tenant: str) -> bool:
        """A call ended now; False if the session is no longer open."""
        now = wire.now_ms()
        with translate_errors():
            return bool(await self._touch(
                keys=self._keys(session_id, tenant),
                args=[now, now + idle_ttl_s * 1000, session_id, record_ttl_s(idle_ttl_s)]))

    async def end(self, session_id: str, tenant: str, state: SessionState, message: str) -> bool:
        """Mark the session ended; False if it already was."""
        with translate_errors():
            return bool(await self._end(
                keys=self._keys(session_id, tenant),
                args=[state.value, message, session_id, wire.now_ms(), self.ended_ttl_s]))

    async def discard(self, session_id: str, tenant: str) -> None:
        with translate_errors():
            await self._discard(keys=self._keys(session_id, tenant), args=[session_id])

    async def get(self, session_id: str) -> SessionInfo | None:
        with translate_errors():
            fields = await self._redis.hgetall(self.keys.session(session_id))
        return session_info(session_id, fields) if fields else None

    async def listed(self) -> list[SessionInfo]:
        """Every session counted against the cap, oldest first."""
        with translate_errors():
            ids = [i.decode() for i in await self._redis.zrange(self.keys.sessions, 0, -1)]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in ids:
                    pipe.hgetall(self.keys.session(session_id))
                found = await pipe.execute()
        infos = [session_info(i, f) for i, f in zip(ids, found, strict=True) if f]
        return sorted(infos, key=lambda info: info.created_at)


def record_ttl_s(idle_ttl_s: float) -> int:
    """How long an open session's record lives unless used."""
    return round(idle_ttl_s + RECORD_GRACE_S)


def session_info(session_id: str, raw: dict[bytes, bytes]) -> SessionInfo:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    state = SessionState(fields["state"])
    last_used_s = float(fields["last_used_ms"]) / 1000
    idle_ttl_s = float(fields["idle_ttl_s"])
    return SessionInfo(
        id=session_id, state=state, timeout=float(fields["timeout_s"]),
        memory_mb=int(fields["memory_mb"]), idle_ttl_s=idle_ttl_s,
        created_at=float(fields["created_ms"]) / 1000, last_used_at=last_used_s,
        expires_at=last_used_s + idle_ttl_s if state is SessionState.OPEN else None,
        calls=int(fields.get("calls", 0)), worker=fields.get("worker"),
        message=fields.get("message"), tenant=fields.get(wire.F_TENANT, ""),
    )
