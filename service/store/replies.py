"""Reply streams, one per API process, where workers answer its waiting callers: the worker's
side (Replies.send) and the API process's one reader (ReplyListener). A job's result reaches
them from the completion script (job_scripts.py)."""

import asyncio
import contextlib
import logging

from redis import asyncio as aioredis

from service import wire
from service.backoff import Backoff
from service.store.errors import QueueUnavailable, quietly, translate_errors
from service.store.job_scripts import REPLY_STREAM_MAXLEN, REPLY_STREAM_TTL_S
from service.store.keys import Keys

log = logging.getLogger(__name__)

# A reply entry's fields, as redis-py gives them.
ID, RESULT, REFUSED = (name.encode() for name in (wire.F_ID, wire.F_RESULT, wire.F_REFUSED))


class Replies:
    """The worker's side: answers to callers waiting on an API process."""

    def __init__(self, redis: aioredis.Redis, keys: Keys):
        self._redis = redis
        self.keys = keys

    async def send(self, reply_to: str, call_id: str, body: bytes, refused: bool = False) -> None:
        """Answer one waiting caller on its API process's reply stream (`refused`: the body is
        a wire.Refusal)."""
        stream = self.keys.replies(reply_to)
        fields = {wire.F_ID: call_id, wire.F_RESULT: body}
        if refused:
            fields[wire.F_REFUSED] = b"1"
        with translate_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, fields,  # type: ignore[arg-type]
                          maxlen=REPLY_STREAM_MAXLEN, approximate=True)
                pipe.expire(stream, REPLY_STREAM_TTL_S)
                await pipe.execute()


class ReplyListener:
    """One reader per API process: resolves the futures of waiting callers by job id."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, api_id: str):
        self._redis = redis
        self.stream = keys.replies(api_id)
        self.waiters: dict[str, asyncio.Future[bytes]] = {}
        self._task: asyncio.Task[None] | None = None

    def expect(self, job_id: str) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiters[job_id] = future
        return future

    def forget(self, job_id: str) -> None:
        self.waiters.pop(job_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_forever(), name="reply-listener")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with quietly():
            await self._redis.delete(self.stream)

    async def _read_forever(self) -> None:
        last_id = "0"
        backoff = Backoff(0.05, 2.0)
        while True:
            try:
                with translate_errors():
                    reply = await self._redis.xread({self.stream: last_id}, count=1000, block=5000)
                backoff.reset()
            except QueueUnavailable as exc:
                log.warning("reply stream unreadable, retrying", extra={"error": str(exc)})
                await backoff.wait()
                continue
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._resolve(fields)

    def _resolve(self, fields: dict[bytes, bytes]) -> None:
        job_id = fields.get(ID, b"").decode()
        future = self.waiters.pop(job_id, None)
        if future is None or future.done():
            return
        body = fields.get(RESULT, b"")
        if REFUSED in fields:
            future.set_exception(wire.Refused(body))
        else:
            future.set_result(body)

