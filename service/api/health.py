"""Liveness and readiness for orchestrators and load balancers."""

from fastapi import APIRouter, Depends

from service.api.responses import JsonResponse
from service.api.services import Services, shared_services
from service.metrics import workers_total
from service.store import QueueUnavailable

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The API process answers; nothing else is checked."""
    return {"status": "ok"}


@router.get("/readyz")
@router.get("/healthz")
async def readyz(verbose: bool = False,
                 services: Services = Depends(shared_services)) -> JsonResponse:
    """Ready when Redis answers and at least one live worker has a free warm container. Verbose:
    the checks, with the warm containers still on their way (a worker's pools fill in the
    background after it starts, and after containers are replaced), and each worker's state."""
    checks: dict[str, object] = {}
    try:
        workers = await services.store.workers.live()
        checks["redis"] = "ok"
    except QueueUnavailable as exc:
        workers = []
        checks["redis"] = f"unreachable: {exc}"
    free = workers_total(workers, "idle_containers")
    checks["workers"] = len(workers)
    checks["idle_containers"] = free
    checks["starting_containers"] = workers_total(workers, "starting")
    ready = checks["redis"] == "ok" and free > 0
    body: dict[str, object] = {"status": "ready" if ready else "not_ready"}
    if verbose:
        body["checks"] = checks
        body["workers"] = workers
    return JsonResponse(body, status_code=200 if ready else 503)
