"""For operators: /metrics (Prometheus), /v1/stats (the dashboard's JSON) and /dashboard."""

import time
from collections import defaultdict
from pathlib import Path

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse

from service import metrics
from service.api.auth import require_admin
from service.api.responses import JsonResponse
from service.api.services import Services, shared_services
from service.stats import dashboard_overview
from service.tenants import TenantDirectory

router = APIRouter(tags=["operations"])

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
WORKER_COUNTS = ("pid", "containers", "capacity", "busy", "idle_containers", "starting",
                 "executions", "replaced")


@router.get("/metrics", dependencies=[Depends(require_admin)],
            response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
async def prometheus_metrics(request: Request,
                             services: Services = Depends(shared_services)) -> Response:
    """Every API and worker process's counters summed, and the live gauges."""
    stored = await services.store.stats.stored()
    workers = await services.store.workers.live()
    gauges = metrics.live_gauges(await services.store.jobs.depths(), workers)
    names = [t.name for t in _directory(request).in_force()]
    per_tenant = {metrics.TENANT_QUEUED.name: await services.store.jobs.tenant_jobs(names),
                  metrics.TENANT_RUNNING.name: running_by_tenant(workers)}
    return Response(metrics.render(stored, gauges, per_tenant), media_type=metrics.CONTENT_TYPE)


def _directory(request: Request) -> TenantDirectory:
    return request.app.state.tenants


def running_by_tenant(workers: list[dict[str, str]]) -> dict[str, int]:
    """Jobs running now per tenant, from the live workers' heartbeats."""
    running: dict[str, int] = defaultdict(int)
    for worker in workers:
        for tenant, count in orjson.loads(worker.get("tenants_busy") or "{}").items():
            running[tenant] += count
    return dict(running)


async def tenant_rows(request: Request, services: Services, workers: list[dict[str, str]],
                      now: float) -> list[dict[str, object]]:
    """Per tenant in force: its weight, jobs queued (waiting) and running, answered last minute."""
    tenants = _directory(request).in_force()
    jobs = await services.store.jobs.tenant_jobs([t.name for t in tenants])
    running = running_by_tenant(workers)
    answered = await services.store.stats.last_minute_by_tenant(now)
    return [{"name": t.name, "admin": t.admin, "weight": t.weight,
             "queued": max(0, jobs[t.name] - running.get(t.name, 0)),
             "running": running.get(t.name, 0), "last_minute": answered.get(t.name, 0),
             "max_queued": t.max_queued, "max_running": t.max_running} for t in tenants]


def _worker_row(info: dict[str, str]) -> dict[str, object]:
    row: dict[str, object] = {name: info.get(name, "") for name in ("id", "host", "pool_error")}
    row |= {name: float(info.get(name) or 0) for name in ("started", "heartbeat")}
    row |= {name: int(float(info.get(name) or 0)) for name in WORKER_COUNTS}
    return row


@router.get("/v1/stats", dependencies=[Depends(require_admin)])
async def stats(request: Request, services: Services = Depends(shared_services)) -> JsonResponse:
    """What the dashboard shows: queue, pool, workers, tenants, totals, throughput, latency,
    errors. For admin tenants only."""
    now = time.time()
    workers = await services.store.workers.live()
    depths = await services.store.jobs.depths()
    gauges = metrics.live_gauges(depths, workers)
    body = {
        "time": now,
        "queue_depth": sum(depths.values()),
        "lanes": depths,
        "pool": {"size": gauges[(metrics.POOL_SIZE.name, ())],
                 "containers": gauges[(metrics.POOL_CONTAINERS.name, ())],
                 "busy": gauges[(metrics.POOL_BUSY.name, ())]},
        "workers": sorted((_worker_row(w) for w in workers), key=lambda w: str(w["id"])),
        "tenants": await tenant_rows(request, services, workers, now),
        **await dashboard_overview(services.store, now),
    }
    return JsonResponse(body)


@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/dashboard/{asset}", include_in_schema=False)
async def dashboard_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise HTTPException(404, f"no dashboard asset {asset!r}")
    return FileResponse(STATIC / asset, media_type=ASSETS[asset])
