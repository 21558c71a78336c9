"""Session calls in Redis: one stream per worker of the calls (bind, open, run, close) to the
sessions it holds, written by API processes and read by that worker alone."""

from redis import asyncio as aioredis

from service import wire
from service.store.errors import quietly, translate_errors
from service.store.keys import Keys

SESSION_CALLS_MAXLEN = 1000
SESSION_CALLS_TTL_S = 3600


class SessionCalls:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self._redis = redis
        self.keys = keys

    async def send(self, worker_id: str, call: wire.SessionCall) -> None:
        stream = self.keys.session_calls(worker_id)
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, call.fields(), maxlen=SESSION_CALLS_MAXLEN, approximate=True)
                pipe.expire(stream, SESSION_CALLS_TTL_S)
                await pipe.execute()

    async def read(self, worker_id: str, after: str, block_ms: int) -> list[wire.SessionCall]:
        """This worker's session calls after entry `after`, waiting up to block_ms; those read
        are deleted (a worker that dies loses its sessions anyway)."""
        stream = self.keys.session_calls(worker_id)
        with translate_errors():
            reply = await self._redis.xread({stream: after}, count=100, block=block_ms)
        calls = [wire.SessionCall.from_entry(eid, fields) for _, entries in reply or ()
                 for eid, fields in entries]
        if calls:
            with quietly():
                await self._redis.xdel(stream, *[call.entry_id for call in calls])
        return calls
