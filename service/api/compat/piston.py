"""Piston's API v2 (engineer-man/piston): `POST /api/v2/execute` and `GET /api/v2/runtimes`.

Every language of service/languages.py is a runtime, under its Piston name and aliases. A
compiled language's answer has a `compile` stage, and no `run` when the compile failed, as
Piston answers. Differences a Piston client may notice: the program is written under the
language's own name (`main.py`, `main.cpp`, Java's public class) whatever its file's name;
`args` become the program's arguments; `output` is stdout followed by stderr, not interleaved
(the streams are captured apart); an omitted `run_timeout` or `run_memory_limit` means the
service's defaults; `compile_memory_limit` is not per request (SANDBOX_COMPILE_MEMORY_MB).
Refusals are 400 with `message`, as Piston answers them, plus this service's `error` reason.
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
from service.languages import BY_NAME, REGISTRY, LanguageSpec, canonical
from service.models import (
    BinaryFile,
    CompileResult,
    ErrorBody,
    Outcome,
    RunRequest,
    RunResult,
    signal_name,
)
from service.settings import mib_ceil

router = APIRouter(prefix="/api/v2", tags=["compat: Piston"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])



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
    compile_timeout: float | None = Field(None, ge=0, description="Milliseconds.")
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
    model_config = ConfigDict(json_schema_extra={"description": "`compile` for compiled "
                                                 "languages; no `run` when the compile failed."})

    language: str
    version: str
    compile: Stage | None = None
    run: Stage | None = None


class Runtime(BaseModel):
    language: str
    version: str
    aliases: list[str]
    runtime: str | None = None


def runtime_of(spec: LanguageSpec) -> Runtime:
    aliases = [a for a in (spec.name, *spec.aliases) if a != spec.display]
    return Runtime(language=spec.display, version=spec.version, aliases=aliases,
                   runtime=RUNTIME_NAMES.get(spec.image))


RUNTIME_NAMES = {"cpp": "gcc", "node": "node"}  # as Piston names the runtime behind a language


def find_runtime(language: str, version: str) -> LanguageSpec | None:
    spec = BY_NAME.get(str(canonical(language)))
    if spec is None and language in DISPLAY_NAMES:
        spec = DISPLAY_NAMES[language]
    return spec if spec is not None and version_matches(version, spec.version) else None


DISPLAY_NAMES = {spec.display: spec for spec in REGISTRY}


def version_matches(selector: str, version: str) -> bool:
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


def to_run_request(request: ExecuteRequest) -> tuple[RunRequest, LanguageSpec]:
    spec = find_runtime(request.language, request.version)
    if spec is None:
        raise InvalidRequest("unsupported_language",
                             f"{request.language}-{request.version} runtime is unknown")
    program = next((i for i, f in enumerate(request.files) if is_text(f)), None)
    if program is None:
        raise InvalidRequest("invalid_request", "files must include at least one utf8 encoded file")
    code = request.files[program].content
    others = {(f.name or f"file{i}.code"): f for i, f in enumerate(request.files) if i != program}
    if spec.source_name(code) in others:
        raise InvalidRequest("invalid_file_name",
                             f"only the program may be named {spec.source_name(code)}")
    run = RunRequest(
        code=code, language=spec.name, stdin=request.stdin,
        files={name: file_content(f) for name, f in others.items()}, args=request.args,
        timeout=request.run_timeout / 1000 if request.run_timeout else None,
        compile_timeout=request.compile_timeout / 1000 if request.compile_timeout else None,
        memory_mb=memory_mb(request.run_memory_limit))
    return run, spec


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


def compile_stage(block: CompileResult, result: RunResult) -> Stage:
    """The compile as Piston reports it: a stage like the run's."""
    timed_out = block.exit_code is None
    message = result.message if result.outcome is Outcome.COMPILE_ERROR else None
    return Stage(stdout=block.stdout, stderr=block.stderr, output=block.stdout + block.stderr,
                 code=block.exit_code, signal="SIGKILL" if timed_out else None, message=message,
                 status=("TO" if "timed out" in (message or "") else "SG" if timed_out else
                         "RE" if block.exit_code else None),
                 cpu_time=None, wall_time=block.duration_ms, memory=None)


def execute_response(spec: LanguageSpec, result: RunResult) -> ExecuteResponse:
    stages = {}  # as Piston: a stage that did not happen is left out
    if result.compile is not None:
        stages["compile"] = compile_stage(result.compile, result)
    if result.outcome is not Outcome.COMPILE_ERROR:
        stages["run"] = to_stage(result)
    return ExecuteResponse(language=spec.display, version=spec.version, **stages)


def refusal(reason: str, message: str) -> Response:
    return error_response(400, reason, message)


@router.get("/runtimes", response_model=list[Runtime])
async def runtimes(services: Services = Depends(get_services)) -> list[Runtime]:
    """The languages this service runs, as Piston lists its runtimes."""
    return [runtime_of(spec) for spec in REGISTRY if spec.name in services.settings.languages]


@router.post("/execute", response_model=ExecuteResponse, response_model_exclude_unset=True,
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
        run, language = to_run_request(request)
        spec = build_job_spec(run, services.settings, wall_clock=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return refusal("invalid_request", f"{where}: {first['msg']}" if where else first["msg"])
    except InvalidRequest as exc:
        return refusal(exc.reason, str(exc))
    result = RunResult.model_validate_json(await services.submitter.run(spec))
    return execute_response(language, result)
