"""NeMo-Skills' sandbox API (NVIDIA/NeMo-Skills, nemo_skills/code_execution): `POST /execute`,
`GET /sessions`, `DELETE /sessions/{id}`, `GET /health`, as its local sandbox server answers.

`ipython` runs the code as the next cell of a session named by the `X-Session-ID` header (or a
`session_id` field), made on first use; `python` (also `python3`, `pypy3`: CPython here) and
`shell` (also `bash`) run once in a fresh sandbox. Differences a client may notice: a value is
pretty-printed with pprint, not IPython's printer; Context and Verbose tracebacks have no
colours and no local variables; `lean4` is not served. Refusals carry this service's `error`
reason beside a `process_status` of `error`, so that their client reads them as failed runs.
"""

from typing import Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.auth import require_key
from service.api.caller import watch_caller
from service.api.compat import nemo_answers as answers
from service.api.errors import RETRY_AFTER_FULL_S
from service.api.responses import JsonResponse
from service.api.services import Services, get_services, shared_services
from service.jobspec import InvalidRequest, build_job_spec
from service.metrics import workers_total
from service.models import Outcome, RunRequest, SessionRequest, SessionRunRequest, SessionState
from service.sessions import SessionBroker, SessionRefused
from service.store import QueueUnavailable
from service.store.aliases import SessionAliases
from service.store.sessions import record_ttl_s

router = APIRouter(tags=["compat: NeMo-Skills"])
keyed = [Depends(require_key)]

SCHEME = "nemo"
PYTHON_NAMES = ("python", "python3", "pypy3")
SHELL_NAMES = ("shell", "bash")
TRACEBACK_MODES = ("Plain", "Minimal", "Context", "Verbose")
GONE = ("not_found", "session_closed", "session_expired", "session_lost")
MAX_NAME = 256
CHARS_TO_BYTES = 4  # a character is at most four bytes of UTF-8


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    generated_code: str
    timeout: int | float = Field(gt=0, description="Seconds.")
    language: str = "ipython"
    std_input: str | None = ""
    max_output_characters: int = Field(1000, ge=0)
    traceback_verbosity: str = "Plain"
    session_id: str | None = Field(None, max_length=MAX_NAME)


class Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason = status, reason


def refusal(status: int, reason: str, message: str) -> JsonResponse:
    """Our error body, read by their client as a failed run."""
    headers = {"Retry-After": str(RETRY_AFTER_FULL_S)} if status in (429, 503) else None
    return JsonResponse({"error": reason, "message": message, "process_status": "error",
                         "stdout": "", "stderr": message + "\n"}, status_code=status,
                        headers=headers)


def aliases(services: Services) -> SessionAliases:
    return services.store.aliases(SCHEME, services.tenant.name)


def output_cap(request: ExecuteRequest, services: Services) -> int:
    settings = services.settings
    wanted = CHARS_TO_BYTES * request.max_output_characters + len(answers.OUTPUT_CUT)
    return min(settings.max_output_bytes, max(settings.default_output_bytes, wanted))


@router.post("/execute", dependencies=[*keyed, Depends(watch_caller)])
async def execute(request: Request, body: Any = Body(examples=[{
        "generated_code": "a = 1\na", "timeout": 10, "language": "ipython",
        "max_output_characters": 1000, "traceback_verbosity": "Plain"}]),
        x_session_id: str | None = Header(None, max_length=MAX_NAME),
        services: Services = Depends(get_services)) -> JsonResponse:
    """Run code as NeMo-Skills' sandbox does; `{process_status, stdout, stderr}`."""
    try:
        req = ExecuteRequest.model_validate(body)
        if req.language == "ipython":
            name = x_session_id or req.session_id
            if name is None:
                return JsonResponse({"error": "X-Session-ID header required for ipython "
                                     "sessions"}, status_code=400)
            answer = await run_cell(req, name, request.app.state.sessions, services)
        elif req.language in PYTHON_NAMES + SHELL_NAMES:
            answer = await run_once(req, services)
        else:
            raise Refusal(400, "unsupported_language", f"language {req.language!r} is not served")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return refusal(400, "invalid_request", f"{where}: {first['msg']}" if where else first["msg"])
    except InvalidRequest as exc:
        return refusal(422, exc.reason, str(exc))
    except (Refusal, SessionRefused) as exc:
        return refusal(exc.status, exc.reason, str(exc))
    return JsonResponse(answers.cut(answer, req.max_output_characters))


async def run_once(req: ExecuteRequest, services: Services) -> dict[str, Any]:
    shell = req.language in SHELL_NAMES
    program = answers.SHELL_PROGRAM if shell else answers.PYTHON_PROGRAM
    run = RunRequest(code=program.format(code=req.generated_code), stdin=req.std_input or None,
                     timeout=req.timeout, max_output_bytes=output_cap(req, services))
    spec = build_job_spec(run, services.settings, wall_clock=True)  # as its server's timeout
    result = orjson.loads(await services.submitter.run(spec))
    if result["outcome"] in (Outcome.SANDBOX_ERROR, Outcome.CANCELLED):  # ours, not the code's
        raise Refusal(503, "sandbox_error", str(result.get("message")))
    return answers.one_off_answer(result, shell, req.timeout)


async def run_cell(req: ExecuteRequest, name: str, broker: SessionBroker,
                   services: Services) -> dict[str, Any]:
    """The code as the next cell of the session `name` (opened if it is not open)."""
    mode = req.traceback_verbosity
    if mode not in TRACEBACK_MODES:
        raise Refusal(400, "invalid_request", f"traceback_verbosity must be one of "
                      f"{', '.join(TRACEBACK_MODES)}")
    cell = SessionRunRequest(code=answers.ipython_input(req.generated_code), timeout=req.timeout,
                             max_output_bytes=output_cap(req, services))
    named = aliases(services)
    session_id, created = await named.resolve(name), False
    result = None
    if session_id is not None:
        try:
            result = orjson.loads(await broker.run(session_id, cell, services.tenant,
                                                   services.settings, ipython=mode))
        except SessionRefused as exc:
            if exc.reason not in GONE:
                raise
    if result is None:
        session_id, created = await open_named(name, session_id, broker, named, services)
        result = orjson.loads(await broker.run(session_id, cell, services.tenant,
                                               services.settings, ipython=mode))
    if result["outcome"] == Outcome.SANDBOX_ERROR:
        raise Refusal(503, "sandbox_error", str(result.get("message")))
    await named.refresh(name, session_id, record_ttl(services))
    answer = answers.ipython_answer(result, mode, req.timeout)
    answer["new_session_created"] = created or result["session_state"] != SessionState.OPEN
    return answer


async def open_named(name: str, gone: str | None, broker: SessionBroker,
                     named: SessionAliases, services: Services) -> tuple[str, bool]:
    """A new session bound to `name`, unless another call bound one first: (its id, ours?)."""
    opened = orjson.loads(await broker.open(SessionRequest(), services.tenant,
                                            services.settings))["id"]
    winner = await named.bind(name, opened, gone, record_ttl(services))
    if winner != opened:
        await broker.close(opened, services.tenant)
    return winner, winner == opened


def record_ttl(services: Services) -> int:
    return record_ttl_s(services.settings.default_session_idle_s)


@router.get("/sessions", dependencies=keyed)
async def list_sessions(request: Request,
                        services: Services = Depends(get_services)) -> dict[str, Any]:
    """The open sessions made through /execute, by the names their clients gave them."""
    infos = {i.id: i for i in await request.app.state.sessions.listed(services.tenant)
             if i.state is SessionState.OPEN}
    names = await aliases(services).names(list(infos))
    return {"sessions": {name: {"backend": "ipython", "created": infos[i].created_at,
                                "last_used": infos[i].last_used_at, "alive": True}
                         for i, name in names.items()},
            "backend": "ipython"}


@router.delete("/sessions/{name}", dependencies=keyed)
async def delete_session(name: str, request: Request,
                         services: Services = Depends(get_services)) -> JsonResponse:
    """Close the session `name`; 404 if there is no open one."""
    named = aliases(services)
    session_id = await named.resolve(name)
    broker: SessionBroker = request.app.state.sessions
    if session_id is not None:
        await named.unbind(name, session_id)
        try:
            was_open = (await broker.info(session_id, services.tenant)).state is SessionState.OPEN
        except SessionRefused:
            was_open = False
        if was_open:
            await broker.close(session_id, services.tenant)
            return JsonResponse({"message": f"IPython session {name} deleted successfully"})
    return JsonResponse({"error": f"IPython session {name} not found"}, status_code=404)


@router.get("/health")
async def health(services: Services = Depends(shared_services)) -> JsonResponse:
    """Healthy when Redis answers and a worker has a warm sandbox free (their client waits
    for a 200 before it sends code)."""
    try:
        workers = await services.store.workers.live()
    except QueueUnavailable:
        workers = []
    ready = workers_total(workers, "idle_containers") > 0
    return JsonResponse({"status": "healthy" if ready else "unhealthy",
                         "worker": services.submitter.api_id},
                        status_code=200 if ready else 503)
