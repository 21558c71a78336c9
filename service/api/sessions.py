"""/v1/sessions: open a session, run code in it call after call (state kept), close it."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import StreamingResponse

from service.api.auth import require_key
from service.api.errors import RETRY_AFTER_FULL_S, documented, error_response
from service.api.event_stream import EVENT_STREAM, events, wants_events
from service.api.responses import JsonResponse, json_response
from service.api.services import Services, get_services
from service.models import (
    SessionInfo,
    SessionList,
    SessionRequest,
    SessionRunRequest,
    SessionRunResult,
)
from service.sessions import SessionBroker, SessionRefused, new_id

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[Depends(require_key)])

ERRORS = documented({
    401: "Missing or wrong API key.",
    404: "`not_found`: no such session (or it ended long ago, or it is another tenant's).",
    409: "`session_busy`: a call is already running in the session.",
    410: "`session_lost` (its process or worker died: its state is gone), `session_closed`, "
         "`session_expired`.",
    422: "Invalid request: a field's type, a limit above its maximum, a bad file name.",
    429: "`session_limit`: as many sessions are open as allowed; `session_quota`: as many of "
         "your tenant's as its max_sessions allows; retry after Retry-After.",
    503: "`sandbox_unavailable` or `queue_unavailable`: retry after Retry-After.",
})


async def get_broker(request: Request) -> SessionBroker:
    return request.app.state.sessions


async def on_refused(_: Request, exc: SessionRefused) -> JsonResponse:
    retry = {"Retry-After": str(RETRY_AFTER_FULL_S)} if exc.status in (429, 503) else None
    return error_response(exc.status, exc.reason, str(exc), headers=retry)


@router.post("", status_code=201, response_model=SessionInfo, responses=ERRORS)
async def open_session(request: Annotated[SessionRequest | None, Body()] = None,
                       broker: SessionBroker = Depends(get_broker),
                       services: Services = Depends(get_services)) -> Response:
    """Open a session: a sandbox of its own whose variables, imports, functions and files persist
    between calls. It closes when idle for `idle_ttl_s`."""
    body = await broker.open(request or SessionRequest(), services.tenant, services.settings)
    return json_response(body, 201)


@router.get("", response_model=SessionList, responses=ERRORS)
async def list_sessions(broker: SessionBroker = Depends(get_broker),
                        services: Services = Depends(get_services)) -> SessionList:
    """The open sessions of your tenant (an admin's: every tenant's)."""
    return SessionList(sessions=await broker.listed(services.tenant))


@router.get("/{session_id}", response_model=SessionInfo, responses=ERRORS)
async def get_session(session_id: str, broker: SessionBroker = Depends(get_broker),
                      services: Services = Depends(get_services)) -> SessionInfo:
    """A session's state and limits; an ended one says how it ended, for a while."""
    return await broker.info(session_id, services.tenant)


@router.post("/{session_id}/run", response_model=SessionRunResult, responses=ERRORS)
async def run_in_session(session_id: str, request: SessionRunRequest, http: Request,
                         broker: SessionBroker = Depends(get_broker),
                         services: Services = Depends(get_services)) -> Response:
    """Run code in the session, as the next cell of a notebook: `value` is the repr of its last
    expression, `stdout`/`stderr` what it printed. A call past its timeout is interrupted
    (KeyboardInterrupt, outcome `timeout`) and the session goes on; if it does not stop, the
    session is lost (`session_state`). With `Accept: text/event-stream` the answer is a stream
    of server-sent events: `stdout` and `stderr` ({"text"}) as the code prints, then `result`
    (the answer above) or `error` (a refusal)."""
    if wants_events(http):
        cell = await broker.prepare(session_id, request, services.tenant, services.settings,
                                    stream=True)
        call_id = new_id()
        return StreamingResponse(
            events(broker.run_prepared(cell, call_id), broker.output, call_id, refusal_event),
            media_type=EVENT_STREAM)
    return json_response(await broker.run(session_id, request, services.tenant,
                                          services.settings))


def refusal_event(exc: BaseException) -> bytes | None:
    if isinstance(exc, SessionRefused):
        return orjson.dumps({"error": exc.reason, "message": str(exc)})
    return None


@router.delete("/{session_id}", response_model=SessionInfo, responses=ERRORS)
async def close_session(session_id: str, broker: SessionBroker = Depends(get_broker),
                        services: Services = Depends(get_services)) -> SessionInfo:
    """Close the session and remove its sandbox (closing an ended session changes nothing)."""
    return await broker.close(session_id, services.tenant)
