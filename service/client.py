"""A Python client of the service: `run`, `batch` and `judge`, synchronous or asynchronous.

    with SandboxClient("http://127.0.0.1:8000") as sandbox:
        result = sandbox.run("print(6*7)")            # RunResult; result.outcome, result.stdout
        results = sandbox.batch(["print(1)", "print(2)"])  # list[RunResult], in order

Concurrency is bounded: at most `max_concurrency` requests are in flight from one client (a long
batch is sent in chunks of `batch_size`, several at a time). Retries, with exponential backoff
and jitter, cover only what is safe to repeat and not the code's fault: HTTP 429, 503 and 504
(waiting at least Retry-After), a request whose connection failed or closed before any answer
(an API process restarting, a proxy dropping a connection; a run is self-contained, so running it
again is safe), and results with outcome `sandbox_error` (only those runs are sent again). A
timeout is not retried: the run may still be going. Other refusals raise SandboxHTTPError; the
code's own failures are results.
"""

import asyncio
import email.utils
import itertools
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from service.models import (
    BatchResult,
    JudgeCase,
    JudgeRequest,
    JudgeResult,
    Outcome,
    RunRequest,
    RunResult,
    Verdict,
)

RETRY_STATUSES = frozenset({429, 503, 504})
# No connection, or the connection closed before any answer came.
DROPPED = (httpx.NetworkError, httpx.RemoteProtocolError)
DEFAULT_TIMEOUT = httpx.Timeout(900.0, connect=10.0)  # a queued batch may wait minutes

RunItem = RunRequest | str | dict[str, Any]


class SandboxHTTPError(Exception):
    """The service refused the request (after retries, for 429, 503 and 504)."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 first): exponential backoff with
        jitter, and never less than the server's Retry-After."""
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return max(parse_retry_after(retry_after), backoff * random.uniform(0.5, 1.0))


def parse_retry_after(value: str | None) -> float:
    """Retry-After in seconds, from delta-seconds or an HTTP date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def run_request(item: RunItem, **fields: Any) -> RunRequest:
    if isinstance(item, RunRequest):
        return item.model_copy(update=fields) if fields else item
    if isinstance(item, str):
        return RunRequest(code=item, **fields)
    return RunRequest(**{**item, **fields})


def judge_request(code: str | JudgeRequest, cases: Sequence[JudgeCase | dict[str, Any]] | None,
                  fields: dict[str, Any]) -> JudgeRequest:
    if isinstance(code, JudgeRequest):
        return code
    return JudgeRequest(code=code, cases=list(cases or ()), **fields)


def body(model: RunRequest | JudgeRequest) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def refusal(response: httpx.Response) -> SandboxHTTPError:
    try:
        detail = response.json()
    except ValueError:
        detail = {}
    if not isinstance(detail, dict):
        detail = {}
    return SandboxHTTPError(response.status_code, str(detail.get("error", "http_error")),
                            str(detail.get("message", response.text[:200])))


def retry_now(response: httpx.Response, attempt: int, policy: RetryPolicy) -> bool:
    if response.is_success:
        return False
    if response.status_code in RETRY_STATUSES and attempt < policy.max_retries:
        return True
    raise refusal(response)


def chunks(items: Sequence[RunRequest], size: int) -> list[Sequence[RunRequest]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def needs_retry(results: Sequence[RunResult | None]) -> list[int]:
    return [i for i, r in enumerate(results) if r is None or r.outcome is Outcome.SANDBOX_ERROR]


def judge_failed_us(result: JudgeResult) -> bool:
    return any(case.verdict is Verdict.SANDBOX_ERROR for case in result.cases)


def headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


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

    def _post(self, path: str, payload: Any) -> bytes:
        for attempt in itertools.count():  # ends by return or raise
            try:
                with self._slots:
                    response = self._http.post(path, json=payload)
            except DROPPED:
                if attempt >= self.retry.max_retries:
                    raise
                time.sleep(self.retry.delay(attempt))
                continue
            if not retry_now(response, attempt, self.retry):
                return response.content
            time.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))

    def _settle(self, requests: Sequence[RunRequest],
                send: Callable[[Sequence[RunRequest]], list[RunResult]]) -> list[RunResult]:
        """Send the runs; send again those that came back sandbox_error, while retries last."""
        results: list[RunResult | None] = [None] * len(requests)
        for attempt in itertools.count():  # ends by return or raise
            todo = needs_retry(results)
            for i, result in zip(todo, send([requests[i] for i in todo]), strict=True):
                results[i] = result
            if not needs_retry(results) or attempt >= self.retry.max_retries:
                return results  # type: ignore[return-value]  # every slot is filled
            time.sleep(self.retry.delay(attempt))

    def _send_one(self, requests: Sequence[RunRequest]) -> list[RunResult]:
        return [RunResult.model_validate_json(self._post("/v1/run", body(requests[0])))]

    def _send_batch(self, requests: Sequence[RunRequest]) -> list[RunResult]:
        payload = {"items": [body(r) for r in requests]}
        return BatchResult.model_validate_json(self._post("/v1/batch", payload)).results

    def run(self, code: RunItem, **fields: Any) -> RunResult:
        """Run one snippet: `run("print(1)", timeout=5)` or `run(RunRequest(...))`."""
        (result,) = self._settle([run_request(code, **fields)], self._send_one)
        return result

    def batch(self, items: Iterable[RunItem], **fields: Any) -> list[RunResult]:
        """Run many snippets; results in order. `fields` apply to every item."""
        requests = [run_request(item, **fields) for item in items]
        parts = chunks(requests, self.batch_size)
        with ThreadPoolExecutor(max(1, min(self.max_concurrency, len(parts)))) as pool:
            done = pool.map(lambda part: self._settle(part, self._send_batch), parts)
            return [result for part in done for result in part]

    def judge(self, code: str | JudgeRequest,
              cases: Sequence[JudgeCase | dict[str, Any]] | None = None,
              **fields: Any) -> JudgeResult:
        """Judge a program against test cases; judged again if any case met a failure of ours."""
        payload = body(judge_request(code, cases, fields))
        for attempt in itertools.count():  # ends by return or raise
            result = JudgeResult.model_validate_json(self._post("/v1/judge", payload))
            if not judge_failed_us(result) or attempt >= self.retry.max_retries:
                return result
            time.sleep(self.retry.delay(attempt))


class AsyncSandboxClient:
    """Asynchronous client, for trainers that score rollouts in an event loop."""

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

    async def _post(self, path: str, payload: Any) -> bytes:
        for attempt in itertools.count():  # ends by return or raise
            try:
                async with self._slots:
                    response = await self._http.post(path, json=payload)
            except DROPPED:
                if attempt >= self.retry.max_retries:
                    raise
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if not retry_now(response, attempt, self.retry):
                return response.content
            await asyncio.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))

    async def _settle(self, requests: Sequence[RunRequest],
                      send: Callable[[Sequence[RunRequest]], Awaitable[list[RunResult]]],
                      ) -> list[RunResult]:
        results: list[RunResult | None] = [None] * len(requests)
        for attempt in itertools.count():  # ends by return or raise
            todo = needs_retry(results)
            for i, result in zip(todo, await send([requests[i] for i in todo]), strict=True):
                results[i] = result
            if not needs_retry(results) or attempt >= self.retry.max_retries:
                return results  # type: ignore[return-value]  # every slot is filled
            await asyncio.sleep(self.retry.delay(attempt))

    async def _send_one(self, requests: Sequence[RunRequest]) -> list[RunResult]:
        return [RunResult.model_validate_json(await self._post("/v1/run", body(requests[0])))]

    async def _send_batch(self, requests: Sequence[RunRequest]) -> list[RunResult]:
        payload = {"items": [body(r) for r in requests]}
        return BatchResult.model_validate_json(await self._post("/v1/batch", payload)).results

    async def run(self, code: RunItem, **fields: Any) -> RunResult:
        (result,) = await self._settle([run_request(code, **fields)], self._send_one)
        return result

    async def batch(self, items: Iterable[RunItem], **fields: Any) -> list[RunResult]:
        requests = [run_request(item, **fields) for item in items]
        parts = await asyncio.gather(*(self._settle(part, self._send_batch)
                                       for part in chunks(requests, self.batch_size)))
        return [result for part in parts for result in part]

    async def judge(self, code: str | JudgeRequest,
                    cases: Sequence[JudgeCase | dict[str, Any]] | None = None,
                    **fields: Any) -> JudgeResult:
        payload = body(judge_request(code, cases, fields))
        for attempt in itertools.count():  # ends by return or raise
            result = JudgeResult.model_validate_json(await self._post("/v1/judge", payload))
            if not judge_failed_us(result) or attempt >= self.retry.max_retries:
                return result
            await asyncio.sleep(self.retry.delay(attempt))
