"""SandboxFusion's API (bytedance/SandboxFusion): `POST /run_code` and `GET /v1/ping`.

Its clients (verl's and SkyRL's reward code, the `sandbox-fusion` package) work unchanged. Its
language names are this service's names or aliases (`cpp`, `java`, `nodejs`, `ts`, `go`, `rust`,
`bash`, `python`, `pytest`); a compiled language's answer carries `compile_result` as
SandboxFusion fills it (a program that does not compile: status Failed, `compile_result` Finished
with the compiler's non-zero return code, or TimeLimitExceeded, and `run_result` null). The
request's unknown fields are ignored, as SandboxFusion does. A full or unreachable queue is
answered 504, the one status verl's client retries.
"""

import glob
from enum import StrEnum

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.auth import require_key
from service.api.caller import watch_caller
from service.api.errors import RETRY_AFTER_DOWN_S, RETRY_AFTER_FULL_S, error_response
from service.api.services import Services, get_services
from service.jobspec import build_job_spec
from service.models import (
    BinaryFile,
    CompileResult,
    ErrorBody,
    Language,
    LanguageName,
    Outcome,
    RunRequest,
    RunResult,
)
from service.store import QueueFull, QueueUnavailable, QuotaExceeded

router = APIRouter(tags=["compat: SandboxFusion"])


class RunCodeRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"code": "print(input())", "stdin": "hi",
                                         "language": "python", "run_timeout": 5,
                                         "memory_limit_MB": 1024}]},
    )

    code: str
    language: LanguageName = Language.PYTHON
    compile_timeout: float = Field(10, gt=0, description="Seconds, for compiled languages.")
    run_timeout: float = Field(10, gt=0, description="Seconds.")
    memory_limit_MB: int = Field(-1, description="MiB; 0 or less: the service's default.")
    stdin: str | None = None
    files: dict[str, str | None] = Field(default_factory=dict,
                                         description="Path → base64 content; null entries skipped.")
    fetch_files: list[str] = Field(default_factory=list,
                                   description="Files to send back after the run (base64).")


class RunStatus(StrEnum):
    SUCCESS = "Success"
    FAILED = "Failed"
    SANDBOX_ERROR = "SandboxError"


class CommandRunStatus(StrEnum):
    FINISHED = "Finished"
    ERROR = "Error"
    TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"


class CommandRunResult(BaseModel):
    status: CommandRunStatus
    execution_time: float | None = Field(description="Seconds.")
    return_code: int | None = Field(description="Exit status, or minus the signal that ended it.")
    stdout: str
    stderr: str


class RunCodeResponse(BaseModel):
    status: RunStatus
    message: str
    compile_result: CommandRunResult | None = None
    run_result: CommandRunResult | None = None
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


def to_run_request(request: RunCodeRequest) -> RunRequest:
    files = {name: BinaryFile(base64=content) for name, content in request.files.items()
             if content is not None}
    memory = request.memory_limit_MB if request.memory_limit_MB > 0 else None
    return RunRequest(code=request.code, language=request.language, stdin=request.stdin,
                      files=files, timeout=request.run_timeout, memory_mb=memory,
                      compile_timeout=request.compile_timeout,
                      return_files=[glob.escape(name) for name in request.fetch_files])


# Ended by us, not by the code: SandboxFusion's SandboxError (a cancelled job never ran to its end).
NOT_THE_CODES = (Outcome.SANDBOX_ERROR, Outcome.CANCELLED)


def command_status(outcome: Outcome) -> CommandRunStatus:
    if outcome is Outcome.TIMEOUT:
        return CommandRunStatus.TIME_LIMIT_EXCEEDED
    if outcome in NOT_THE_CODES:
        return CommandRunStatus.ERROR
    return CommandRunStatus.FINISHED


def return_code(result: RunResult) -> int | None:
    """As SandboxFusion's subprocess reports it: minus the signal for a killed process, and
    none after a timeout or a failure of ours."""
    if result.outcome is Outcome.TIMEOUT or result.outcome in NOT_THE_CODES:
        return None
    if result.exit_code is not None:
        return result.exit_code
    return -result.signal if result.signal is not None else None


def run_status(outcome: Outcome) -> RunStatus:
    if outcome is Outcome.OK:
        return RunStatus.SUCCESS
    if outcome in NOT_THE_CODES:
        return RunStatus.SANDBOX_ERROR
    return RunStatus.FAILED


def compile_result(block: CompileResult | None) -> CommandRunResult | None:
    """As SandboxFusion reports its compile command: Finished with the compiler's exit code, or
    TimeLimitExceeded without one."""
    if block is None:
        return None
    status = (CommandRunStatus.FINISHED if block.exit_code is not None
              else CommandRunStatus.TIME_LIMIT_EXCEEDED)
    return CommandRunResult(status=status, execution_time=block.duration_ms / 1000,
                            return_code=block.exit_code, stdout=block.stdout, stderr=block.stderr)


def to_response(result: RunResult) -> RunCodeResponse:
    compiled = compile_result(result.compile)
    if result.outcome is Outcome.COMPILE_ERROR:  # nothing ran: SandboxFusion's run_result null
        return RunCodeResponse(status=RunStatus.FAILED, message="", compile_result=compiled)
    status = command_status(result.outcome)
    run = CommandRunResult(
        status=status,
        execution_time=None if status is CommandRunStatus.ERROR else result.timing.run_ms / 1000,
        return_code=return_code(result), stdout=result.stdout, stderr=result.stderr)
    return RunCodeResponse(status=run_status(result.outcome), message=result.message or "",
                           compile_result=compiled, run_result=run,
                           files={name: f.base64 for name, f in result.files.items()})


@router.get("/v1/ping")
async def ping() -> str:
    """SandboxFusion's liveness check: the JSON string "pong"."""
    return "pong"


@router.post("/run_code", response_model=RunCodeResponse,
             dependencies=[Depends(require_key), Depends(watch_caller)],
             responses={422: {"model": ErrorBody, "description": "Invalid request."},
                        504: {"model": ErrorBody, "description": "Queue full or unreachable; "
                              "retry after Retry-After seconds."}})
async def run_code(request: RunCodeRequest,
                   services: Services = Depends(get_services)) -> RunCodeResponse | Response:
    """Run code as SandboxFusion would answer it: `status` Success, Failed or SandboxError."""
    spec = build_job_spec(to_run_request(request), services.settings, wall_clock=True)
    try:
        raw = await services.submitter.run(spec)
    except QueueFull:
        return error_response(504, "queue_full", "the queue is full; retry later",
                              headers={"Retry-After": str(RETRY_AFTER_FULL_S)})
    except QuotaExceeded:
        return error_response(504, "quota_exceeded", "your tenant's queue quota is full; retry "
                              "later", headers={"Retry-After": str(RETRY_AFTER_FULL_S)})
    except QueueUnavailable:
        return error_response(504, "queue_unavailable", "the job queue is unreachable; retry later",
                              headers={"Retry-After": str(RETRY_AFTER_DOWN_S)})
    return to_response(RunResult.model_validate_json(raw))
