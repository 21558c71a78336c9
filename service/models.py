"""Request and response schemas: the public contract of the HTTP API."""

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    """How an execution ended. Trainers reward on this; only sandbox_error is our fault."""

    OK = "ok"
    ERROR = "error"  # non-zero exit or uncaught exception
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"  # output was cut at the cap; the flags say which stream
    KILLED = "killed"  # ended by a signal not of our making; `signal` says which
    SANDBOX_ERROR = "sandbox_error"  # ours: no container, Docker or Redis down; safe to retry


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Language(StrEnum):
    PYTHON = "python"


class BinaryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base64: str = Field(description="The file's bytes, base64-encoded.")


FileContent = Annotated[
    str | BinaryFile,
    Field(description='Text content, or {"base64": "..."} for bytes.'),
]


class RunRequest(BaseModel):
    """One snippet to run. Limits default to the service's settings and may not exceed its maxima."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"code": "print(6*7)"},
                {"code": "import sys; print(sys.stdin.read().upper())", "stdin": "hello",
                 "timeout": 5, "memory_mb": 256},
                {"code": "print(open('data.txt').read())", "files": {"data.txt": "42"}},
            ]
        },
    )

    code: str = Field(description="The program's source.")
    language: Language = Field(Language.PYTHON, description="Language of the code.")
    stdin: str | None = Field(None, description="Text fed to the program's standard input.")
    files: dict[str, FileContent] = Field(
        default_factory=dict,
        description="Files put in the working directory before the run: relative name → content.",
    )
    timeout: float | None = Field(None, gt=0, description="Wall-clock limit in seconds.")
    memory_mb: int | None = Field(None, gt=0, description="Memory limit in MiB.")
    max_output_bytes: int | None = Field(None, gt=0, description="Cap of stdout and of stderr, each.")
    fresh_interpreter: bool = Field(
        False,
        description="Run `python3 main.py` in a new interpreter (exact semantics, slower) instead "
        "of a fork of the warm one.",
    )
    network: bool = Field(
        False,
        description="Give the code network access (a container of its own on an isolated bridge "
        "network); refused unless the operator allows it.",
    )


class Timing(BaseModel):
    queue_ms: float = Field(description="From enqueue to the start of execution.")
    run_ms: float = Field(description="The execution itself, inside the sandbox.")
    total_ms: float = Field(description="From enqueue to the result.")


class RunResult(BaseModel):
    id: str
    outcome: Outcome
    exit_code: int | None = Field(description="Exit status; null when ended by a signal.")
    signal: int | None = Field(description="The signal that ended it, if any (9 = SIGKILL).")
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timing: Timing
    message: str | None = Field(None, description="Why, for outcomes other than ok and error.")


class JobAccepted(BaseModel):
    id: str
    state: JobState


class JobStatus(BaseModel):
    id: str
    state: JobState
    result: RunResult | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx: a machine-readable reason and a sentence for humans."""

    error: str = Field(description="Machine-readable reason, e.g. invalid_request, queue_full.")
    message: str
    details: list[dict[str, Any]] | None = None
