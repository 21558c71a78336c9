"""A Python client of the sandbox service: `run`, `batch` and `judge`, synchronous or asynchronous.

    from sandbox_client import SandboxClient

    with SandboxClient("http://127.0.0.1:8000") as sandbox:
        result = sandbox.run("print(6*7)")            # RunResult; result.outcome, result.stdout
        results = sandbox.batch(["print(1)", "print(2)"], progress=True)  # in order; a tqdm bar

Concurrency is bounded: at most `max_concurrency` requests are in flight from one client (a long
batch is sent in chunks of `batch_size`, several at a time, each read as its runs end). Retries,
with exponential backoff and jitter, cover only what is safe to repeat and not the code's fault:
HTTP 429, 503 and 504 (waiting at least Retry-After), a request whose connection failed or closed
before the whole answer (an API process restarting, a proxy dropping a connection; a run is
self-contained, so running it again is safe), and results with outcome `sandbox_error` (only those
runs are sent again). A timeout is not retried: the run may still be going. Other refusals raise
SandboxHTTPError; the code's own failures are results.

Needs httpx and pydantic alone (tqdm for progress bars: `pip install 'sandbox-client[progress]'`).
"""

from sandbox_client.async_client import AsyncSandboxClient
from sandbox_client.models import (
    CaseResult,
    Checker,
    CompareMode,
    JobCancel,
    JobState,
    JobStatus,
    JudgeCase,
    JudgeRequest,
    JudgeResult,
    Outcome,
    Priority,
    RunRequest,
    RunResult,
    Verdict,
)
from sandbox_client.parts import JUDGE_PARTS
from sandbox_client.retry import RetryPolicy, SandboxHTTPError, parse_retry_after
from sandbox_client.sync_client import SandboxClient

__all__ = [
    "JUDGE_PARTS",
    "AsyncSandboxClient",
    "CaseResult",
    "Checker",
    "CompareMode",
    "JobCancel",
    "JobState",
    "JobStatus",
    "JudgeCase",
    "JudgeRequest",
    "JudgeResult",
    "Outcome",
    "Priority",
    "RetryPolicy",
    "RunRequest",
    "RunResult",
    "SandboxClient",
    "SandboxHTTPError",
    "Verdict",
    "parse_retry_after",
]
