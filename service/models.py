"""Request and response schemas: the public contract of the HTTP API."""

import signal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from service.languages import REGISTRY, canonical


class Outcome(StrEnum):
    """How an execution ended. Trainers reward on this; only sandbox_error is our fault."""

    OK = "ok"
    ERROR = "error"  # non-zero exit or uncaught exception
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"  # output was cut at the cap; the flags say which stream
    KILLED = "killed"  # ended by a signal not of our making; `signal` says which
    SANDBOX_ERROR = "sandbox_error"  # ours: no container, Docker or Redis down; safe to retry
    CANCELLED = "cancelled"  # its caller hung up or cancelled it: dropped, or killed running
    COMPILE_ERROR = "compile_error"  # the compiler refused the program, or timed out; not run


def signal_name(number: int) -> str:
    """SIGKILL, SIGRTMIN+6 (real-time signals have no name of their own), or the number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN < number < signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


class Priority(StrEnum):
    """The lane a job waits in: workers always take interactive jobs first."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


PriorityField = Annotated[
    Priority | None,
    Field(description="`interactive` (the default of single runs) or `bulk` (the default of "
          "batches and judgings): workers take interactive jobs first. A batch or judging may "
          "ask for interactive only up to SANDBOX_INTERACTIVE_MAX_ITEMS items."),
]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


Language = StrEnum("Language", {spec.name.upper(): spec.name for spec in REGISTRY})  # type: ignore[misc]
Language.__doc__ = "A language's name (service/languages.py); its aliases are accepted too."
LanguageName = Annotated[Language, BeforeValidator(canonical)]
LANGUAGE_HELP = ("Language of the code: " + ", ".join(spec.name for spec in REGISTRY)
                 + ", or an alias (c++17, nodejs, ts, golang, sh, ...; GET /api/v2/runtimes lists them).")


class BinaryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base64: str = Field(description="The file's bytes, base64-encoded.")


FileContent = Annotated[
    str | BinaryFile,
    Field(description='Text content, or {"base64": "..."} for bytes.'),
]

ReturnFiles = Annotated[
    list[str],
    Field(description="Files to send back once the code has run: glob patterns relative to the "
          "working directory (`*.png`, `out/**/*.csv`); only regular files, never through a "
          "symlink, within the service's count and size caps. `plt.show()` saves figures as "
          "figure-<n>.png there."),
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
    language: LanguageName = Field(Language.PYTHON, description=LANGUAGE_HELP)
    stdin: str | None = Field(None, description="Text fed to the program's standard input.")
    files: dict[str, FileContent] = Field(
        default_factory=dict,
        description="Files put in the working directory before the run: relative name → content.",
    )
    timeout: float | None = Field(
        None, gt=0, description="Time limit in seconds: wall-clock time, less what the program "
        "spent waiting for a CPU while the host ran others (up to SANDBOX_CPU_WAIT_ALLOWANCE_S "
        "more of wall-clock time).")
    cpu_timeout: float | None = Field(
        None, gt=0, description="CPU-time limit in seconds (all the program's processes and "
        "threads), whatever the host's load; none by default.")
    memory_mb: int | None = Field(None, gt=0, description="Memory limit in MiB.")
    max_output_bytes: int | None = Field(None, gt=0, description="Cap of stdout and of stderr, each.")
    fresh_interpreter: bool = Field(
        False,
        description="Run `python3 main.py` in a new interpreter (exact semantics, slower) instead "
        "of a fork of the warm one (python; other languages always start afresh).",
    )
    compile_timeout: float | None = Field(
        None, gt=0, description="Wall-clock limit of the compile step, seconds (compiled "
        "languages: c, cpp, java, typescript, go, rust).")
    args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=256,
        description="Command-line arguments: sys.argv[1:] of the program.")
    network: bool = Field(
        False,
        description="Give the code network access (a container of its own on an isolated bridge "
        "network); refused unless the operator allows it.",
    )
    return_files: ReturnFiles = Field(default_factory=list)
    priority: PriorityField = None


class Timing(BaseModel):
    queue_ms: float = Field(description="From enqueue to the start of execution.")
    run_ms: float = Field(description="The execution itself, inside the sandbox (wall clock).")
    cpu_ms: float | None = Field(None, description="CPU time the execution used (every process "
                                 "and thread of it); null where it did not run.")
    cpu_wait_ms: float | None = Field(None, description="Time its main process was ready to run "
                                      "but waited for a CPU; null where it did not run.")
    total_ms: float = Field(description="From enqueue to the result.")


class ReturnedFile(BaseModel):
    base64: str = Field(description="The file's bytes, base64-encoded.")
    media_type: str = Field(description="From the name's extension, e.g. image/png.")


class CompileResult(BaseModel):
    """The compile step of a compiled language: done once per distinct program and kept."""

    stdout: str
    stderr: str
    exit_code: int | None = Field(description="The compiler's exit status; null when it was "
                                  "killed (timeout, memory).")
    duration_ms: float = Field(description="How long the compile took, when it was done.")
    cached: bool = Field(description="True when the program was compiled before and the "
                         "compiled files were reused (this run did not compile).")


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
    files: dict[str, ReturnedFile] = Field(
        default_factory=dict, description="The files asked for with return_files: name → content.")
    files_truncated: bool = Field(False, description="Some matching files were left out (caps).")
    compile: CompileResult | None = Field(None, description="The compile step, for compiled "
                                          "languages; outcome compile_error when it failed.")


class JobAccepted(BaseModel):
    id: str
    state: JobState


class JobStatus(BaseModel):
    id: str
    state: JobState
    result: RunResult | None = None


class JobCancel(JobStatus):
    """The job after DELETE /v1/jobs/{id}: done either way, with its result."""

    cancelled: bool = Field(description="True when this call cancelled it; false when it had "
                            "already ended (its own result stands).")


class ErrorBody(BaseModel):
    """Every 4xx/5xx: a machine-readable reason and a sentence for humans."""

    error: str = Field(description="Machine-readable reason, e.g. invalid_request, queue_full.")
    message: str
    details: list[dict[str, Any]] | None = None


# --- Batches: many runs in one call -------------------------------------------------------------

class BatchRequest(BaseModel):
    """Runs to do in one call, each as for POST /v1/run; at most SANDBOX_MAX_BATCH_ITEMS."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [{"code": "print(1)"},
                                                   {"code": "print(input())", "stdin": "2"}]}]},
    )

    items: list[RunRequest] = Field(description="The runs, answered in this order.")
    priority: PriorityField = None


class BatchResult(BaseModel):
    results: list[RunResult] = Field(description="One result per item, in request order.")


class BatchLine(BaseModel):
    """One line of a streamed batch (NDJSON), sent as soon as that run ends."""

    index: int = Field(description="Position of the item in the request.")
    result: RunResult


# --- Judging: one program against test cases ------------------------------------------------------

class CompareMode(StrEnum):
    EXACT = "exact"  # byte for byte
    TRAILING_WHITESPACE = "trailing_whitespace"  # ends of lines and trailing blank lines ignored
    NUMERIC = "numeric"  # token by token; numbers equal within the tolerance


class Verdict(StrEnum):
    """How one test case went. Only passed counts toward the pass rate."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"  # output differs, or an assertion failed
    RUNTIME_ERROR = "runtime_error"  # non-zero exit or an uncaught exception
    EXITED_EARLY = "exited_early"  # exited 0 before the case's assertions ran
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"
    SANDBOX_ERROR = "sandbox_error"  # ours: retry the judging
    COMPILE_ERROR = "compile_error"  # the program did not compile
    SKIPPED = "skipped"  # after the first failure, when asked to stop there
    CANCELLED = "cancelled"  # its job was cancelled (DELETE /v1/jobs/{id}): not the code's fault
    PRESENTATION_ERROR = "presentation_error"  # the checker's exit code 2


class JudgeCase(BaseModel):
    """Standard input and the expected standard output, or assertions, or both."""

    model_config = ConfigDict(extra="forbid")

    stdin: str | None = Field(None, description="Fed to the program's standard input.")
    expected_stdout: str | None = Field(
        None, description="What the program must print, compared as the request's `compare` says.")
    assertion: str | None = Field(
        None, description="Code appended to the program (e.g. `assert add(2, 2) == 4`); the case "
        "passes only if it runs to its end.")


class Checker(BaseModel):
    """A program that decides each case (testlib's convention): run as `checker input.txt
    output.txt answer.txt` (the case's stdin, the program's stdout, the expected stdout), it
    exits 0 (accepted), 1 (wrong answer) or 2 (presentation error); anything else is a failure
    of the checker, reported as sandbox_error."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="The checker's source (e.g. C++ with testlib.h given in files).")
    language: LanguageName = Field(Language.PYTHON, description=LANGUAGE_HELP)
    files: dict[str, FileContent] = Field(default_factory=dict,
                                          description="Files beside it (testlib.h, say).")


class JudgeRequest(BaseModel):
    """One program, run once per case as parallel jobs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"code": "print(sum(map(int, input().split())))",
                 "cases": [{"stdin": "1 2", "expected_stdout": "3"},
                           {"stdin": "5 5", "expected_stdout": "10"}]},
                {"code": "def add(a, b):\n    return a + b",
                 "cases": [{"assertion": "assert add(2, 2) == 4"},
                           {"assertion": "assert add(-1, 1) == 0"}],
                 "stop_on_first_failure": True},
            ]
        },
    )

    code: str = Field(description="The program's source.")
    language: LanguageName = Field(Language.PYTHON, description=LANGUAGE_HELP)
    cases: list[JudgeCase] = Field(min_length=1, description="At most SANDBOX_MAX_BATCH_ITEMS.")
    compare: CompareMode = Field(CompareMode.TRAILING_WHITESPACE,
                                 description="How stdout is compared with expected_stdout.")
    tolerance: float = Field(1e-6, ge=0, description="numeric mode: numbers a, b are equal when "
                             "|a - b| <= tolerance * max(1, |b|).")
    stop_on_first_failure: bool = Field(
        False, description="Answer once the first failing case (in order) is known; the cases "
        "after it are skipped.")
    files: dict[str, FileContent] = Field(default_factory=dict,
                                          description="Files put in the working directory of each case.")
    timeout: float | None = Field(None, gt=0, description="Wall-clock limit of each case, seconds.")
    memory_mb: int | None = Field(None, gt=0, description="Memory limit of each case, MiB.")
    max_output_bytes: int | None = Field(None, gt=0, description="Cap of stdout and of stderr, each.")
    fresh_interpreter: bool = Field(False, description="As for POST /v1/run.")
    priority: PriorityField = None
    compile_timeout: float | None = Field(None, gt=0, description="As for POST /v1/run; the "
                                          "program is compiled once for all cases.")
    checker: Checker | None = Field(None, description="Decides each case that ran to its end "
                                    "instead of `compare`; compiled once too.")


class CaseResult(BaseModel):
    index: int = Field(description="Position of the case in the request.")
    verdict: Verdict
    message: str | None = Field(None, description="Why it failed, e.g. the first difference.")
    result: RunResult | None = Field(
        description="The run (stdout without the judge's end marker); null when skipped.")


class JudgeResult(BaseModel):
    passed: int = Field(description="Cases with verdict passed.")
    total: int = Field(description="All cases, skipped ones included.")
    pass_rate: float = Field(description="passed / total.")
    cases: list[CaseResult] = Field(description="One per case, in request order.")


# --- Sessions: state kept between calls, for agents ----------------------------------------------

class SessionState(StrEnum):
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"  # by its caller
    EXPIRED = "expired"  # idle past its TTL
    LOST = "lost"  # its process or its worker died: its state is gone


class SessionRequest(BaseModel):
    """A session: one sandbox kept for its caller, whose variables, imports, functions and files
    persist from call to call. Limits default to the service's settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{}, {"timeout": 30, "memory_mb": 1024, "idle_ttl_s": 900}]})

    timeout: float | None = Field(None, gt=0, description="Wall-clock limit of each call, seconds "
                                  "(a call may ask for another).")
    memory_mb: int | None = Field(None, gt=0, description="Memory of the session (all its state), MiB.")
    idle_ttl_s: float | None = Field(None, gt=0, description="Closed after this long without a call.")


class SessionInfo(BaseModel):
    id: str
    state: SessionState
    timeout: float = Field(description="Default wall-clock limit of a call, seconds.")
    memory_mb: int
    idle_ttl_s: float
    created_at: float = Field(description="Unix time.")
    last_used_at: float = Field(description="Unix time the last call ended (or the session opened).")
    expires_at: float | None = Field(description="When it closes unless used; null once it has ended.")
    calls: int = Field(description="Calls run so far.")
    worker: str | None = Field(None, description="The worker holding its sandbox.")
    message: str | None = Field(None, description="Why it ended, once it has.")
    tenant: str = Field("", description="The tenant that opened it (only it, and admins, see it).")


class SessionList(BaseModel):
    sessions: list[SessionInfo]


class SessionRunRequest(BaseModel):
    """Code to run in a session, in the namespace the previous calls left."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"code": "x = 41"}, {"code": "x + 1"},
                     {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()",
                      "return_files": ["*.png"]}]})

    code: str = Field(description="Python source; the value of its last expression is returned.")
    files: dict[str, FileContent] = Field(
        default_factory=dict, description="Files written in the working directory first "
        "(replacing files of the same name).")
    return_files: ReturnFiles = Field(default_factory=list)
    timeout: float | None = Field(None, gt=0, description="Wall-clock limit of this call, seconds; "
                                  "default: the session's.")
    max_output_bytes: int | None = Field(None, gt=0, description="Cap of stdout and of stderr, each.")


class SessionRunResult(RunResult):
    value: str | None = Field(None, description="repr() of the last expression's value, as a "
                              "notebook shows it; null when there is none (or it is None).")
    session_id: str
    session_state: SessionState = Field(description="open, or lost when this call ended the "
                                        "session's process (a timeout it ignored, a crash).")
