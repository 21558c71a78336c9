"""What the routers need, built once per API process and reached through the app state."""

import uuid
from dataclasses import dataclass

from fastapi import Request
from redis import asyncio as aioredis

from service.keys import Keys
from service.queue import JobQueue, ReplyListener
from service.settings import Settings
from service.submit import Submitter

REDIS_SOCKET_TIMEOUT_S = 30


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    queue: JobQueue
    replies: ReplyListener
    submitter: Submitter

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        # A request waits for a free connection (as long as a Redis call may take) rather than
        # being told Redis is down when a burst has them all busy.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_connections,
            timeout=REDIS_SOCKET_TIMEOUT_S, socket_keepalive=True,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S, socket_connect_timeout=2,
            health_check_interval=30)
        redis = aioredis.Redis.from_pool(pool)
        keys = Keys(settings.key_prefix)
        api_id = uuid.uuid4().hex[:12]
        queue = JobQueue(redis, keys, settings.result_ttl_s, settings.max_queue_depth)
        replies = ReplyListener(redis, keys, api_id)
        return cls(settings, redis, queue, replies,
                   Submitter(queue, replies, api_id, settings.queue_wait_s))

    async def close(self) -> None:
        await self.replies.stop()
        await self.redis.aclose()


async def get_services(request: Request) -> Services:
    """A coroutine on purpose: FastAPI runs a plain function dependency in a thread pool."""
    return request.app.state.services
