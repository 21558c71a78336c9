"""One execution's result, as every layer passes it along: built once (by the worker from the
runner's report, or for a job that did not run), encoded once into the JSON the caller gets
(models.RunResult, whose shape a unit test holds it to), and read as an object by whoever needs
its outcome or timing (the stats), never parsed back from its bytes."""

import mimetypes
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.models import JobState, Outcome
from service.wire import now_ms

MEDIA_TYPES = mimetypes.MimeTypes()  # the standard library's table, not this host's files


@dataclass(slots=True)
class Timing:
    queue_ms: float
    run_ms: float
    cpu_ms: float | None  # None where the code did not run
    cpu_wait_ms: float | None
    total_ms: float


@dataclass(slots=True)
class ExecutionResult:
    id: str
    outcome: Outcome
    timing: Timing
    message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    # What some results add, in this order: files and files_truncated (files asked back),
    # compile (a compiled language's), value, session_id and session_state (a session's cell).
    extra: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The result as the caller gets it (JSON)."""
        t = self.timing
        return orjson.dumps({
            "id": self.id, "outcome": self.outcome, "exit_code": self.exit_code,
            "signal": self.signal, "stdout": self.stdout, "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated, "stderr_truncated": self.stderr_truncated,
            "timing": {"queue_ms": t.queue_ms, "run_ms": t.run_ms, "cpu_ms": t.cpu_ms,
                       "cpu_wait_ms": t.cpu_wait_ms, "total_ms": t.total_ms},
            "message": self.message, **self.extra,
        })


def from_report(request_id: str, report: dict[str, Any], outcome: Outcome, message: str | None,
                queue_ms: float, total_ms: float) -> ExecutionResult:
    """The result of an execution the runner reported."""
    timing = Timing(round(queue_ms, 3), report["run_ms"], report["cpu_ms"], report["cpu_wait_ms"],
                    round(total_ms, 3))
    return ExecutionResult(
        request_id, outcome, timing, message, report["exit_code"], report["signal"],
        report["stdout"], report["stderr"], report["stdout_truncated"],
        report["stderr_truncated"], returned_files(report))


def returned_files(report: dict[str, Any]) -> dict[str, Any]:
    """The result's `files` (with media types from the names) when files were asked back."""
    if "files" not in report:
        return {}
    files = {name: {"base64": data, "media_type": media_type(name)}
             for name, data in report["files"].items()}
    return {"files": files, "files_truncated": report["files_truncated"]}


def media_type(name: str) -> str:
    guessed, _ = MEDIA_TYPES.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def not_run(request_id: str, outcome: Outcome, message: str | None,
            waited_ms: float) -> ExecutionResult:
    """A result without a run to report: no output, no exit status."""
    waited = round(waited_ms, 3)
    return ExecutionResult(request_id, outcome, Timing(waited, 0.0, None, None, waited), message)


def sandbox_error(request_id: str, message: str,
                  enqueued_ms: float | None = None) -> ExecutionResult:
    """The result of a job we failed to run: the code is not to blame, a retry is safe."""
    waited = max(0.0, now_ms() - enqueued_ms) if enqueued_ms else 0.0
    return not_run(request_id, Outcome.SANDBOX_ERROR, message, waited)


def cancelled(request_id: str, message: str) -> ExecutionResult:
    """The result of a job cancelled before it ended: dropped unstarted, or killed running."""
    return not_run(request_id, Outcome.CANCELLED, message, 0.0)


def encode_status(job_id: str, state: JobState, result: bytes | None,
               cancelled: bool | None = None) -> bytes:
    """A job's status (models.JobStatus; models.JobCancel with `cancelled`) around its encoded
    result, which is embedded as it is, not decoded again."""
    status = {"id": job_id, "state": state, "result": orjson.Fragment(result) if result else None}
    if cancelled is not None:
        status["cancelled"] = cancelled
    return orjson.dumps(status)
