"""Piston's API v2 (engineer-man/piston): `POST /api/v2/execute` and `GET /api/v2/runtimes`.

Differences a Piston client may notice: the program runs as `main.py` whatever its file's name;
`args` become sys.argv[1:]; `run.output` is stdout
followed by stderr, not interleaved (the streams are captured apart); an omitted `run_timeout`
or `run_memory_limit` means the service's defaults. Refusals are 400 with `message`, as Piston
answers them, plus this service's `error` reason.
"""

import base64
from typing import Any

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.auth import require_key
from service.api.caller import watch_caller
from service.api.errors import error_response
from service.api.services import Services, get_services
from service.jobspec import InvalidRequest, build_job_spec
from service.models import (
    BinaryFile,
    ErrorBody,
    Language,
    Outcome,
    RunRequest,
    RunResult,
    signal_name,
)
from service.settings import mib_ceil

router = APIRouter(prefix="/api/v2", tags=["compat: Piston"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])

PYTHON_VERSION = "3.11.2"  # Debian 12's python3, in the sandbox image
PYTHON_ALIASES = ("py", "py3", "python3", "python3.11")
PROGRAM_NAME = "main.py"  # the name the sandbox gives the program


class PistonFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    content: str
    encoding: str | None = Field(None, description="utf8 (default), base64 or hex.")


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    language: str
    version: str
    files: list[PistonFile]
    stdin: str | None = None
    args: list[str] = Field(default_factory=list)
    run_timeout: float | None = Field(None, ge=0, description="Milliseconds.")
    run_memory_limit: int | None = Field(None, description="Bytes; -1: the service's default.")


class Stage(BaseModel):
    stdout: str
    stderr: str
    output: str = Field(description="stdout, then stderr.")
    code: int | None
    signal: str | None
    message: str | None
    status: str | None = Field(description="RE, SG, TO, OL, EL (as isolate reports), or XX: ours.")
    cpu_time: float | None = Field(description="Milliseconds of CPU time.")
    wall_time: float | None = Field(description="Milliseconds.")
    memory: int | None


class ExecuteResponse(BaseModel):
    language: str
    version: str
    run: Stage


class Runtime(BaseModel):
    language: str
    version: str
    aliases: list[str]


def version_matches(selector: str, version: str = PYTHON_VERSION) -> bool:
    """SemVer selectors of the forms `*`, `3`, `3.11`, `3.x`, `3.11.2`."""
    parts = selector.strip().split(".")
    have = version.split(".")
    if len(parts) > len(have):
        return False
    for want, got in zip(parts, have, strict=False):
        if want in ("*", "x", "X"):
            return True
        if want != got:
            return False
    return True


def file_content(file: PistonFile) -> str | BinaryFile:
    if file.encoding == "base64":
        return BinaryFile(base64=file.content)
    if file.encoding == "hex":
        try:
            return BinaryFile(base64=base64.b64encode(bytes.fromhex(file.content)).decode())
        except ValueError as exc:
            raise InvalidRequest("invalid_hex", f"file {file.name!r}: {exc}") from exc
    return file.content


def is_text(file: PistonFile) -> bool:
    return file.encoding not in ("base64", "hex")


def memory_mb(limit: int | None) -> int | None:
    return None if limit is None or limit <= 0 else mib_ceil(limit)


def to_run_request(request: ExecuteRequest) -> RunRequest:
    known = request.language in (Language.PYTHON, *PYTHON_ALIASES)
    if not (known and version_matches(request.version)):
        raise InvalidRequest("unsupported_language",
                             f"{request.language}-{request.version} runtime is unknown")
    program = next((i for i, f in enumerate(request.files) if is_text(f)), None)
    if program is None:
        raise InvalidRequest("invalid_request", "files must include at least one utf8 encoded file")
    others = {(f.name or f"file{i}.code"): f for i, f in enumerate(request.files) if i != program}
    if PROGRAM_NAME in others:
        raise InvalidRequest("invalid_file_name", f"only the program may be named {PROGRAM_NAME}")
    return RunRequest(
        code=request.files[program].content, stdin=request.stdin,
        files={name: file_content(f) for name, f in others.items()}, args=request.args,
        timeout=request.run_timeout / 1000 if request.run_timeout else None,
        memory_mb=memory_mb(request.run_memory_limit))


def status_of(result: RunResult) -> str | None:
    if result.outcome is Outcome.OK:
        return None
    if result.outcome is Outcome.TIMEOUT:
        return "TO"
    if result.outcome is Outcome.OUTPUT_LIMIT:
        return "OL" if result.stdout_truncated else "EL"
    if result.outcome in (Outcome.SANDBOX_ERROR, Outcome.CANCELLED):  # ours, not the code's
        return "XX"
    return "SG" if result.signal is not None else "RE"


def to_stage(result: RunResult) -> Stage:
    status = status_of(result)
    killed_by_us = status in ("TO", "OL", "EL")
    message = result.message
    if status == "RE" and message is None:
        message = f"Exited with error status {result.exit_code}"
    return Stage(
        stdout=result.stdout, stderr=result.stderr, output=result.stdout + result.stderr,
        code=None if killed_by_us else result.exit_code,
        signal="SIGKILL" if killed_by_us else (
            None if result.signal is None else signal_name(result.signal)),
        message=message, status=status, cpu_time=result.timing.cpu_ms, wall_time=result.timing.run_ms,
        memory=None)


def refusal(reason: str, message: str) -> Response:
    return error_response(400, reason, message)


@router.get("/runtimes", response_model=list[Runtime])
async def runtimes() -> list[Runtime]:
    """The languages this service runs, as Piston lists its runtimes."""
    return [Runtime(language=Language.PYTHON.value, version=PYTHON_VERSION, aliases=list(PYTHON_ALIASES))]


@router.post("/execute", response_model=ExecuteResponse,
             responses={400: {"model": ErrorBody, "description": "Invalid request."},
                        429: {"model": ErrorBody, "description": "Queue full; retry later."}})
async def execute(body: dict[str, Any] = Body(examples=[{
        "language": "python", "version": "3.x",
        "files": [{"name": "main.py", "content": "print(input()[::-1])"}],
        "stdin": "olleh", "run_timeout": 3000}]),
        services: Services = Depends(get_services)) -> ExecuteResponse | Response:
    """Run a program as Piston would, and answer as Piston does."""
    try:
        request = ExecuteRequest.model_validate(body)
        spec = build_job_spec(to_run_request(request), services.settings, wall_clock=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return refusal("invalid_request", f"{where}: {first['msg']}" if where else first["msg"])
    except InvalidRequest as exc:
        return refusal(exc.reason, str(exc))
    result = RunResult.model_validate_json(await services.submitter.run(spec))
    return ExecuteResponse(language=Language.PYTHON.value, version=PYTHON_VERSION, run=to_stage(result))
