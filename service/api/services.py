"""What the routers need, built once per API process and reached through the app state."""

import dataclasses
import uuid
from dataclasses import dataclass

from fastapi import Depends, Request
from redis import asyncio as aioredis

from service.api.auth import require_key
from service.keys import Keys
from service.queue import JobQueue
from service.replies import ReplyListener
from service.settings import Settings
from service.submit import Submitter
from service.tenants import ANONYMOUS_TENANT, Tenant

REDIS_SOCKET_TIMEOUT_S = 30


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    queue: JobQueue
    replies: ReplyListener
    submitter: Submitter
    tenant: Tenant = ANONYMOUS_TENANT

    def for_tenant(self, tenant: Tenant, limits: Settings) -> "Services":
        """The services as one tenant uses them: its capped settings, its jobs."""
        return dataclasses.replace(self, settings=limits, tenant=tenant,
                                   submitter=self.submitter.for_tenant(tenant))

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


async def shared_services(request: Request) -> Services:
    """The services with no tenant's limits, for routes without a key (the probes).

    A coroutine on purpose: FastAPI runs a plain function dependency in a thread pool."""
    return request.app.state.services


async def get_services(request: Request, tenant: Tenant = Depends(require_key)) -> Services:
    """The services bound to the caller's tenant."""
    shared: Services = request.app.state.services
    return shared.for_tenant(tenant, request.app.state.tenants.limits(tenant))
