"""For operators: /metrics (Prometheus), /v1/stats (the dashboard's JSON) and /dashboard."""

import time
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import FileResponse

from service import metrics
from service.api.auth import require_key
from service.api.health import live_workers
from service.api.responses import JsonResponse
from service.api.services import Services, get_services
from service.stats import StatsReader

router = APIRouter(tags=["operations"])

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
WORKER_COUNTS = ("pid", "containers", "capacity", "busy", "idle_containers", "executions",
                 "replaced")


def _reader(services: Services) -> StatsReader:
    return StatsReader(services.redis, services.queue.keys)


@router.get("/metrics", dependencies=[Depends(require_key)],
            response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
async def prometheus_metrics(services: Services = Depends(get_services)) -> Response:
    """Every API and worker process's counters summed, and the live gauges."""
    stored = await _reader(services).stored()
    gauges = metrics.live_gauges(await services.queue.depth(), await live_workers(services))
    return Response(metrics.render(stored, gauges), media_type=metrics.CONTENT_TYPE)


def _worker_row(info: dict[str, str]) -> dict[str, object]:
    row: dict[str, object] = {name: info.get(name, "") for name in ("id", "host", "pool_error")}
    row |= {name: float(info.get(name) or 0) for name in ("started", "heartbeat")}
    row |= {name: int(float(info.get(name) or 0)) for name in WORKER_COUNTS}
    return row


@router.get("/v1/stats", dependencies=[Depends(require_key)])
async def stats(services: Services = Depends(get_services)) -> JsonResponse:
    """What the dashboard shows: queue, pool, workers, totals, throughput, latency, errors."""
    now = time.time()
    workers = await live_workers(services)
    depth = await services.queue.depth()
    gauges = metrics.live_gauges(depth, workers)
    body = {
        "time": now,
        "queue_depth": depth,
        "pool": {"size": gauges[metrics.POOL_SIZE.name],
                 "containers": gauges[metrics.POOL_CONTAINERS.name],
                 "busy": gauges[metrics.POOL_BUSY.name]},
        "workers": sorted((_worker_row(w) for w in workers), key=lambda w: str(w["id"])),
        **await _reader(services).overview(now),
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
