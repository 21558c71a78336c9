"""SandboxClient: the synchronous client (threads may share it)."""

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sandbox_client.models import (
    JobAccepted,
    JobCancel,
    JobStatus,
    JudgeCase,
    JudgeRequest,
    JudgeResult,
    Priority,
    RunItem,
    RunRequest,
    RunResult,
)
from sandbox_client.parts import (
    DEFAULT_TIMEOUT,
    STREAMED,
    batch_body,
    batch_finished,
    body,
    chunks,
    finished,
    headers,
    judge_failed_us,
    judge_parts,
    judge_request,
    merge_judged,
    needs_retry,
    record,
    run_request,
    take_line,
)
from sandbox_client.progress import ProgressArg, Tally, tally
from sandbox_client.retry import DROPPED, RetryPolicy, retry_now

Answers = Iterator[tuple[int, RunResult]]  # (place among the runs sent, result) as they end


class SandboxClient:
    """Synchronous client; safe to share between threads (they share its concurrency bound)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 max_concurrency: int = 16, batch_size: int = 1000,
                 retry: RetryPolicy = RetryPolicy(), timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None):
        self.retry = retry
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._http = httpx.Client(base_url=base_url, headers=headers(api_key), timeout=timeout,
                                  transport=transport,
                                  limits=httpx.Limits(max_connections=max_concurrency))

    def __enter__(self) -> "SandboxClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, payload: Any = None) -> bytes:
        for attempt in itertools.count():  # ends by return or raise
            try:
                with self._slots:
                    response = self._http.request(method, path, json=payload)
            except DROPPED:
                if self.retry.spent(attempt):
                    raise
                time.sleep(self.retry.delay(attempt))
                continue
            if not retry_now(response, attempt, self.retry):
                return response.content
            time.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))

    def _stream_batch(self, requests: Sequence[RunRequest], priority: Priority | str | None
                      ) -> Answers:
        """POST /v1/batch, its results read as each run ends. A connection dropped before every
        result came is sent again with the runs still unanswered (each is self-contained)."""
        pending = set(range(len(requests)))
        for attempt in itertools.count():  # ends by return or raise
            sent, retry_after = sorted(pending), None
            try:
                with self._slots, self._http.stream(
                        "POST", "/v1/batch", params=STREAMED,
                        json=batch_body([requests[i] for i in sent], priority)) as response:
                    if response.is_success:
                        for line in filter(None, response.iter_lines()):
                            yield take_line(line, sent, pending)
                    else:
                        response.read()
                        retry_now(response, attempt, self.retry)  # raises unless retryable
                        retry_after = response.headers.get("retry-after")
            except DROPPED:
                if self.retry.spent(attempt):
                    raise
            if batch_finished(pending, attempt, self.retry):
                return
            time.sleep(self.retry.delay(attempt, retry_after))

    def _settle(self, requests: Sequence[RunRequest], send: Callable[[Sequence[RunRequest]], Answers],
                done: Tally) -> list[RunResult]:
        """Send the runs; send again those that came back sandbox_error, while retries last."""
        results: list[RunResult | None] = [None] * len(requests)
        for attempt in itertools.count():  # ends by return or raise
            todo = needs_retry(results)
            for i, result in send([requests[i] for i in todo]):
                record(results, todo[i], result, done)
            if finished(results, attempt, self.retry, done):
                return results  # type: ignore[return-value]  # every slot is filled
            time.sleep(self.retry.delay(attempt))

    def _send_one(self, requests: Sequence[RunRequest]) -> Answers:
        yield 0, RunResult.model_validate_json(self._request("POST", "/v1/run", body(requests[0])))

    def run(self, code: RunItem, **fields: Any) -> RunResult:
        """Run one snippet: `run("print(1)", timeout=5)`, `run(RunRequest(...))`; `fields` are
        RunRequest's (`priority="bulk"` too)."""
        (result,) = self._settle([run_request(code, **fields)], self._send_one, Tally(1, None))
        return result

    def batch(self, items: Iterable[RunItem], *, priority: Priority | str | None = None,
              progress: ProgressArg = None, **fields: Any) -> list[RunResult]:
        """Run many snippets; results in order. `fields` apply to every item; `priority` to the
        batch; `progress(done, total)` is called as each run ends (True: a tqdm bar)."""
        requests = [run_request(item, **fields) for item in items]
        parts = chunks(requests, self.batch_size)

        def send(part: Sequence[RunRequest]) -> Answers:
            return self._stream_batch(part, priority)

        with tally(progress, len(requests), "run") as done, \
                ThreadPoolExecutor(max(1, min(self.max_concurrency, len(parts)))) as pool:
            settled = pool.map(lambda part: self._settle(part, send, done), parts)
            return [result for part in settled for result in part]

    def _judge(self, request: JudgeRequest, done: Tally) -> JudgeResult:
        payload = body(request)
        for attempt in itertools.count():  # ends by return or raise
            result = JudgeResult.model_validate_json(self._request("POST", "/v1/judge", payload))
            if not judge_failed_us(result) or self.retry.spent(attempt):
                done(result.total)
                return result
            time.sleep(self.retry.delay(attempt))

    def judge(self, code: str | JudgeRequest,
              cases: Sequence[JudgeCase | dict[str, Any]] | None = None, *,
              progress: ProgressArg = None, **fields: Any) -> JudgeResult:
        """Judge a program against test cases; judged again if any case met a failure of ours.
        With `progress`, the cases go in up to JUDGE_PARTS parts at once, counted as each ends."""
        request = judge_request(code, cases, fields)
        with tally(progress, len(request.cases), "case") as done:
            if not progress or len(request.cases) < 2:
                return self._judge(request, done)
            parts = judge_parts(request)
            with ThreadPoolExecutor(min(self.max_concurrency, len(parts))) as pool:
                return merge_judged(request, list(pool.map(lambda p: self._judge(p, done), parts)))

    def submit(self, code: RunItem, **fields: Any) -> str:
        """Queue one snippet (POST /v1/jobs) and return its job id at once."""
        answer = self._request("POST", "/v1/jobs", body(run_request(code, **fields)))
        return JobAccepted.model_validate_json(answer).id

    def job(self, job_id: str) -> JobStatus:
        """A job's state and, once done, its result (GET /v1/jobs/{id})."""
        return JobStatus.model_validate_json(self._request("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> JobCancel:
        """Cancel a job (DELETE /v1/jobs/{id}): dropped if queued, killed if running; a job
        already done keeps its result (`cancelled` False)."""
        return JobCancel.model_validate_json(self._request("DELETE", f"/v1/jobs/{job_id}"))
