"""/v1/run (wait for the result) and /v1/jobs (queue now, collect later, or cancel)."""

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from service.api.auth import require_key
from service.api.caller import watch_caller
from service.api.errors import SUBMIT_ERRORS
from service.api.event_stream import EVENT_STREAM, event, events, wants_events
from service.api.responses import json_response
from service.api.services import Services, get_services
from service.jobspec import build_job_spec
from service.models import (
    ErrorBody,
    JobAccepted,
    JobCancel,
    JobState,
    JobStatus,
    Priority,
    RunRequest,
    RunResult,
)
from service.priority import choose_lane
from service.result import encode_status

CANCEL_MESSAGE = "cancelled: DELETE /v1/jobs/{id}"

router = APIRouter(prefix="/v1", tags=["run"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])

@router.post("/run", response_model=RunResult, responses=SUBMIT_ERRORS)
async def run(request: RunRequest, http: Request,
              services: Services = Depends(get_services)) -> Response:
    """Run one snippet and wait for its result.

    A failure of ours (no container, Docker down) is a 200 with outcome `sandbox_error`,
    distinct from the code's own failure. A caller that hangs up cancels the run. With
    `Accept: text/event-stream` the answer is a stream of server-sent events:
    `queued` ({"id"}: the job's id) first, `stdout` and `stderr` ({"text"}) as the code prints,
    then `result` (the answer above).
    """
    spec = build_job_spec(request, services.settings)
    lane = choose_lane(request.priority, Priority.INTERACTIVE, 1, services.settings)
    if wants_events(http):
        spec.stream = True
        job_id, result = await services.submitter.start(spec, lane)
        queued = event("queued", orjson.dumps({"id": job_id}))
        return StreamingResponse(events(result, services.store.output, job_id, lambda _: None,
                                        queued),
                                 media_type=EVENT_STREAM)
    return json_response(await services.submitter.run(spec, lane))


@router.post("/jobs", status_code=202, response_model=JobAccepted, responses=SUBMIT_ERRORS)
async def submit_job(request: RunRequest,
                     services: Services = Depends(get_services)) -> JobAccepted:
    """Queue one snippet and return its id at once; poll `GET /v1/jobs/{id}` for the result."""
    spec = build_job_spec(request, services.settings)
    lane = choose_lane(request.priority, Priority.INTERACTIVE, 1, services.settings)
    job_id = await services.submitter.submit(spec, lane)
    return JobAccepted(id=job_id, state=JobState.QUEUED)


@router.get("/jobs/{job_id}", response_model=JobStatus,
            responses={404: {"model": ErrorBody,
                             "description": "Unknown or expired job, or another tenant's."}})
async def job_status(job_id: str, services: Services = Depends(get_services)) -> Response:
    """A job's state (queued, running, done) and, once done, its result (kept for the TTL)."""
    found = await services.store.jobs.status(job_id)
    if found is None or not services.tenant.can_see(found[2]):  # another's: as if unknown
        raise HTTPException(404, f"no job {job_id!r}: unknown, or its result has expired")
    state, result, _ = found
    return json_response(encode_status(job_id, state, result))


@router.delete("/jobs/{job_id}", response_model=JobCancel,
               responses={404: {"model": ErrorBody,
                                "description": "Unknown or expired job, or another tenant's."}})
async def cancel_job(job_id: str, services: Services = Depends(get_services)) -> Response:
    """Cancel a job: dropped if it has not started, killed if it runs. Its result becomes
    outcome `cancelled` (`cancelled: true`); a job already done keeps its own result
    (`cancelled: false`). Either way the answer is the job as GET shows it, now done."""
    found = await services.store.jobs.status(job_id)
    if found is None or not services.tenant.can_see(found[2]):  # another's: as if unknown
        raise HTTPException(404, f"no job {job_id!r}: unknown, or its result has expired")
    (before,) = await services.store.jobs.cancel([job_id], CANCEL_MESSAGE, found[2])
    found = await services.store.jobs.status(job_id)
    if before is None or found is None:
        raise HTTPException(404, f"no job {job_id!r}: unknown, or its result has expired")
    state, result, _ = found
    return json_response(encode_status(job_id, state, result,
                                       cancelled=before is not JobState.DONE))
