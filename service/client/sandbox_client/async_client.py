"""AsyncSandboxClient: the asynchronous client, for trainers that score rollouts in an event loop."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
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

Answers = AsyncIterator[tuple[int, RunResult]]


class AsyncSandboxClient:
    """Asynchronous client: the same calls as SandboxClient, awaited."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 max_concurrency: int = 64, batch_size: int = 1000,
                 retry: RetryPolicy = RetryPolicy(), timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.retry = retry
        self.batch_size = batch_size
        self._slots = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers(api_key),
                                       timeout=timeout, transport=transport,
                                       limits=httpx.Limits(max_connections=max_concurrency))

    async def __aenter__(self) -> "AsyncSandboxClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, payload: Any = None) -> bytes:
        for attempt in itertools.count():  # ends by return or raise
            try:
                async with self._slots:
                    response = await self._http.request(method, path, json=payload)
            except DROPPED:
                if self.retry.spent(attempt):
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if not retry_now(response, attempt, self.retry):
                return response.content
            await asyncio.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))

    async def _stream_batch(self, requests: Sequence[RunRequest],
                            priority: Priority | str | None) -> Answers:
        """As SandboxClient._stream_batch."""
        pending = set(range(len(requests)))
        for attempt in itertools.count():  # ends by return or raise
            sent, retry_after = sorted(pending), None
            try:
                async with self._slots, self._http.stream(
                        "POST", "/v1/batch", params=STREAMED,
                        json=batch_body([requests[i] for i in sent], priority)) as response:
                    if response.is_success:
                        async for line in response.aiter_lines():
                            if line:
                                yield take_line(line, sent, pending)
                    else:
                        await response.aread()
                        retry_now(response, attempt, self.retry)  # raises unless retryable
                        retry_after = response.headers.get("retry-after")
            except DROPPED:
                if self.retry.spent(attempt):
                    raise
            if batch_finished(pending, attempt, self.retry):
                return
            await asyncio.sleep(self.retry.delay(attempt, retry_after))

    async def _settle(self, requests: Sequence[RunRequest],
                      send: Callable[[Sequence[RunRequest]], Answers], done: Tally
                      ) -> list[RunResult]:
        """As SandboxClient._settle."""
        results: list[RunResult | None] = [None] * len(requests)
        for attempt in itertools.count():  # ends by return or raise
            todo = needs_retry(results)
            async for i, result in send([requests[i] for i in todo]):
                record(results, todo[i], result, done)
            if finished(results, attempt, self.retry, done):
                return results  # type: ignore[return-value]  # every slot is filled
            await asyncio.sleep(self.retry.delay(attempt))

    async def _send_one(self, requests: Sequence[RunRequest]) -> Answers:
        answer = await self._request("POST", "/v1/run", body(requests[0]))
        yield 0, RunResult.model_validate_json(answer)

    async def run(self, code: RunItem, **fields: Any) -> RunResult:
        (result,) = await self._settle([run_request(code, **fields)], self._send_one,
                                       Tally(1, None))
        return result

    async def batch(self, items: Iterable[RunItem], *, priority: Priority | str | None = None,
                    progress: ProgressArg = None, **fields: Any) -> list[RunResult]:
        requests = [run_request(item, **fields) for item in items]

        def send(part: Sequence[RunRequest]) -> Answers:
            return self._stream_batch(part, priority)

        with tally(progress, len(requests), "run") as done:
            parts = await asyncio.gather(*(self._settle(part, send, done)
                                           for part in chunks(requests, self.batch_size)))
        return [result for part in parts for result in part]

    async def _judge(self, request: JudgeRequest, done: Tally) -> JudgeResult:
        payload = body(request)
        for attempt in itertools.count():  # ends by return or raise
            answer = await self._request("POST", "/v1/judge", payload)
            result = JudgeResult.model_validate_json(answer)
            if not judge_failed_us(result) or self.retry.spent(attempt):
                done(result.total)
                return result
            await asyncio.sleep(self.retry.delay(attempt))

    async def judge(self, code: str | JudgeRequest,
                    cases: Sequence[JudgeCase | dict[str, Any]] | None = None, *,
                    progress: ProgressArg = None, **fields: Any) -> JudgeResult:
        request = judge_request(code, cases, fields)
        with tally(progress, len(request.cases), "case") as done:
            if not progress or len(request.cases) < 2:
                return await self._judge(request, done)
            answers = await asyncio.gather(*(self._judge(part, done)
                                             for part in judge_parts(request)))
        return merge_judged(request, answers)

    async def submit(self, code: RunItem, **fields: Any) -> str:
        answer = await self._request("POST", "/v1/jobs", body(run_request(code, **fields)))
        return JobAccepted.model_validate_json(answer).id

    async def job(self, job_id: str) -> JobStatus:
        return JobStatus.model_validate_json(await self._request("GET", f"/v1/jobs/{job_id}"))

    async def cancel(self, job_id: str) -> JobCancel:
        return JobCancel.model_validate_json(await self._request("DELETE", f"/v1/jobs/{job_id}"))
