"""The application factory: routers, error mapping, body cap, and the Redis-backed services."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import NoMatchFound

from service.api import batch, errors, health, judge, mcp, ops, runs, sessions, tools
from service.api.body_limit import BodyLimitMiddleware
from service.api.compat import e2b, nemo_skills, piston, sandboxfusion
from service.api.request_metrics import RequestMetricsMiddleware
from service.api.responses import JsonResponse
from service.api.services import Services
from service.heap import freeze_startup_heap
from service.sessions import SessionBroker, SessionRefused
from service.settings import Settings, get_settings
from service.tenants import TenantDirectory


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tenants = TenantDirectory(settings)  # a bad tenants file stops the start here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, tenants.reload)
        services = Services.build(settings)
        app.state.services = services
        app.state.sessions = SessionBroker(services.store, services.replies,
                                           services.submitter.api_id, settings)
        services.replies.start()
        freeze_startup_heap()
        try:
            async with mcp_sessions.run():
                yield
        finally:
            await services.close()

    app = FastAPI(
        title="Sandbox",
        summary="Run untrusted code fast and safely, for RL trainers and agents.",
        version="0.1.0",
        default_response_class=JsonResponse,
        lifespan=lifespan,
    )
    app.state.tenants = tenants
    errors.install(app)
    app.include_router(runs.router)
    app.include_router(health.router)
    app.include_router(ops.router)
    app.include_router(batch.router)
    app.include_router(judge.router)
    app.include_router(sandboxfusion.router)
    app.include_router(piston.router)
    app.include_router(nemo_skills.router)
    app.include_router(e2b.router)
    app.include_router(sessions.router)
    app.include_router(tools.router)
    app.add_exception_handler(SessionRefused, sessions.on_refused)  # type: ignore[arg-type]
    mcp_sessions = mcp.mount(app, tenants)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, settings=settings)
    prepare_routes(app)
    return app


def prepare_routes(app: FastAPI) -> None:
    """Have FastAPI prepare every route now, not on its first request: it builds each router's
    routes (their dependencies, their models' validators) the first time a request is matched
    against them, 150-200 ms of CPU here, which the first burst of requests after a start (64
    sessions opened at once, say) would wait for. A lookup of a name no route has walks them all."""
    with contextlib.suppress(NoMatchFound):
        app.url_path_for("")
