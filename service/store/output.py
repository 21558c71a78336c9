"""Output relayed as it is produced, for a streamed request: the worker appends each piece the
runner sends to a Redis stream of the request's own, the API process reads it from there and
sends it to its caller. The runner sends only what it keeps under the request's output cap;
the stream's length is capped again here, and it expires soon after the request ends."""

import base64
from dataclasses import dataclass

from redis import asyncio as aioredis

from service.store.errors import translate_errors
from service.store.keys import Keys

MAX_ENTRIES = 10_000  # approximate: pieces past it push the oldest out
TTL_S = 300
F_STREAM, F_DATA = "stream", "data"


@dataclass(frozen=True)
class Piece:
    entry_id: str
    stream: str  # stdout or stderr
    data: bytes


class OutputStream:
    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self._redis = redis
        self.keys = keys

    async def append(self, request_id: str, stream: str, data_b64: str) -> None:
        """One piece, as the runner sent it (base64)."""
        key = self.keys.output(request_id)
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {F_STREAM: stream, F_DATA: base64.b64decode(data_b64)},
                          maxlen=MAX_ENTRIES, approximate=True)
                pipe.expire(key, TTL_S)
                await pipe.execute()

    async def read(self, request_id: str, after: str, block_ms: int | None) -> list[Piece]:
        """Pieces after entry `after` ("0": from the start), waiting up to block_ms for one."""
        with translate_errors():
            reply = await self._redis.xread({self.keys.output(request_id): after}, block=block_ms)
        return [Piece(eid.decode(), fields[F_STREAM.encode()].decode(), fields[F_DATA.encode()])
                for _, entries in reply or () for eid, fields in entries]

    async def forget(self, request_id: str) -> None:
        with translate_errors():
            await self._redis.delete(self.keys.output(request_id))
