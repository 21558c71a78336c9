"""The service's wire shapes as this client sends and reads them.

The server's own schemas (service/models.py) are the contract; these mirror the fields a client
sends and reads, without the server's validation. Requests pass fields this client does not know
yet as they are (the server judges them); answers ignore fields added later.
tests/unit/test_client_models.py and tests/integration/test_client.py keep the two in step.
"""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    """How an execution ended; only sandbox_error is the service's fault (safe to retry)."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"
    SANDBOX_ERROR = "sandbox_error"
    CANCELLED = "cancelled"
    COMPILE_ERROR = "compile_error"


class Verdict(StrEnum):
    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    EXITED_EARLY = "exited_early"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"
    SANDBOX_ERROR = "sandbox_error"
    COMPILE_ERROR = "compile_error"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    PRESENTATION_ERROR = "presentation_error"


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BULK = "bulk"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class CompareMode(StrEnum):
    EXACT = "exact"
    TRAILING_WHITESPACE = "trailing_whitespace"
    NUMERIC = "numeric"


FileContent = str | dict[str, str]  # text, or {"base64": "..."} for bytes


class Request(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunRequest(Request):
    code: str
    language: str = "python"
    stdin: str | None = None
    files: dict[str, FileContent] = Field(default_factory=dict)
    timeout: float | None = None
    cpu_timeout: float | None = None
    memory_mb: int | None = None
    max_output_bytes: int | None = None
    fresh_interpreter: bool = False
    compile_timeout: float | None = None
    args: list[str] = Field(default_factory=list)
    network: bool = False
    return_files: list[str] = Field(default_factory=list)
    priority: Priority | None = None


class JudgeCase(Request):
    stdin: str | None = None
    expected_stdout: str | None = None
    assertion: str | None = None


class Checker(Request):
    code: str
    language: str = "python"
    files: dict[str, FileContent] = Field(default_factory=dict)


class JudgeRequest(Request):
    code: str
    language: str = "python"
    cases: list[JudgeCase]
    compare: CompareMode = CompareMode.TRAILING_WHITESPACE
    tolerance: float = 1e-6
    stop_on_first_failure: bool = False
    files: dict[str, FileContent] = Field(default_factory=dict)
    timeout: float | None = None
    memory_mb: int | None = None
    max_output_bytes: int | None = None
    fresh_interpreter: bool = False
    priority: Priority | None = None
    compile_timeout: float | None = None
    checker: Checker | None = None


class Timing(BaseModel):
    queue_ms: float
    run_ms: float
    cpu_ms: float | None = None
    cpu_wait_ms: float | None = None
    total_ms: float


class ReturnedFile(BaseModel):
    base64: str
    media_type: str


class CompileResult(BaseModel):
    stdout: str
    stderr: str
    exit_code: int | None
    duration_ms: float
    cached: bool


class RunResult(BaseModel):
    id: str
    outcome: Outcome
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timing: Timing
    message: str | None = None
    files: dict[str, ReturnedFile] = Field(default_factory=dict)
    files_truncated: bool = False
    compile: CompileResult | None = None


class BatchLine(BaseModel):
    """One line of a streamed batch: a run's place in the request and its result."""

    index: int
    result: RunResult


class JobAccepted(BaseModel):
    id: str
    state: JobState


class JobStatus(BaseModel):
    id: str
    state: JobState
    result: RunResult | None = None


class JobCancel(JobStatus):
    cancelled: bool


class CaseResult(BaseModel):
    index: int
    verdict: Verdict
    message: str | None = None
    result: RunResult | None


class JudgeResult(BaseModel):
    passed: int
    total: int
    pass_rate: float
    cases: list[CaseResult]


RunItem = RunRequest | str | dict[str, Any]
