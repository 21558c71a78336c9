"""Names other APIs' clients give their sessions (NeMo-Skills' X-Session-ID), bound to ours.
Each tenant names its own: two tenants' clients may both say "rollout-17".

A client names a session before it exists and expects it made on first use; the name and its
reverse live as long as the session's record may, pushed back at each call.
"""

from redis import asyncio as aioredis

from service.store.errors import translate_errors
from service.store.keys import Keys

# Bind a name to a new session, unless another caller bound it to a session of its own since
# the name was last read (`expected`: the session it named then, '' for none): that one wins.
_BIND = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[2] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
return ARGV[1]
"""

# Forget a name, if it still names that session.
_UNBIND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""


class SessionAliases:
    def __init__(self, redis: aioredis.Redis, keys: Keys, scheme: str, tenant: str):
        self._redis = redis
        self.keys = keys
        self.scheme = scheme
        self.tenant = tenant
        self._bind = redis.register_script(_BIND)
        self._unbind = redis.register_script(_UNBIND)

    def _pair(self, name: str, session_id: str) -> list[str]:
        return [self.keys.session_alias(self.scheme, self.tenant, name),
                self.keys.session_alias_of(self.scheme, session_id)]

    async def resolve(self, name: str) -> str | None:
        with translate_errors():
            found = await self._redis.get(self.keys.session_alias(self.scheme, self.tenant, name))
        return found.decode() if found else None

    async def bind(self, name: str, session_id: str, expected: str | None, ttl_s: int) -> str:
        """Name session_id; the session the name ends up naming (another caller's may win)."""
        with translate_errors():
            winner = await self._bind(keys=self._pair(name, session_id),
                                      args=[session_id, expected or "", ttl_s, name])
        return winner.decode() if isinstance(winner, bytes) else str(winner)

    async def refresh(self, name: str, session_id: str, ttl_s: int) -> None:
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in self._pair(name, session_id):
                    pipe.expire(key, ttl_s)
                await pipe.execute()

    async def unbind(self, name: str, session_id: str) -> None:
        with translate_errors():
            await self._unbind(keys=self._pair(name, session_id), args=[session_id])

    async def names(self, session_ids: list[str]) -> dict[str, str]:
        """Session id → its name, for those of session_ids that have one."""
        if not session_ids:
            return {}
        with translate_errors():
            found = await self._redis.mget(
                [self.keys.session_alias_of(self.scheme, i) for i in session_ids])
        return {i: n.decode() for i, n in zip(session_ids, found, strict=True) if n}
