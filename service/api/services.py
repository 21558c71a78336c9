"""What the routers need, built once per API process and reached through the app state."""

import dataclasses
import uuid
from dataclasses import dataclass

from fastapi import Depends, Request

from service.api.auth import require_key
from service.settings import Settings
from service.store import Store
from service.store.replies import ReplyListener
from service.submit import Submitter
from service.tenants import ANONYMOUS_TENANT, Tenant


@dataclass
class Services:
    settings: Settings
    store: Store
    replies: ReplyListener
    submitter: Submitter
    tenant: Tenant = ANONYMOUS_TENANT

    def for_tenant(self, tenant: Tenant, limits: Settings) -> "Services":
        """The services as one tenant uses them: its capped settings, its jobs."""
        return dataclasses.replace(self, settings=limits, tenant=tenant,
                                   submitter=self.submitter.for_tenant(tenant))

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        store = Store.connect(settings)
        api_id = uuid.uuid4().hex[:12]
        replies = store.reply_listener(api_id)
        return cls(settings, store, replies,
                   Submitter(store, replies, api_id, settings.queue_wait_s))

    async def close(self) -> None:
        await self.replies.stop()
        await self.store.close()


async def shared_services(request: Request) -> Services:
    """The services with no tenant's limits, for routes without a key (the probes).

    A coroutine on purpose: FastAPI runs a plain function dependency in a thread pool."""
    return request.app.state.services


async def get_services(request: Request, tenant: Tenant = Depends(require_key)) -> Services:
    """The services bound to the caller's tenant."""
    shared: Services = request.app.state.services
    return shared.for_tenant(tenant, request.app.state.tenants.limits(tenant))
