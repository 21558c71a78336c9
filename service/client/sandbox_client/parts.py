"""A call's requests: built from the caller's items, cut into parts (a batch in chunks, a judging
in parts when its progress is asked), and the parts' answers put back together; the bookkeeping
both clients share between their requests (what is answered, what is sent again, when to stop)."""

from collections.abc import Sequence
from typing import Any

import httpx

from sandbox_client.models import (
    BatchLine,
    CaseResult,
    JudgeCase,
    JudgeRequest,
    JudgeResult,
    Outcome,
    Priority,
    RunItem,
    RunRequest,
    RunResult,
    Verdict,
)
from sandbox_client.progress import Tally
from sandbox_client.retry import RetryPolicy

DEFAULT_TIMEOUT = httpx.Timeout(900.0, connect=10.0)  # a queued batch may wait minutes
STREAMED = {"stream": "true"}  # /v1/batch answers each run as it ends (NDJSON)
JUDGE_PARTS = 10  # a judging with progress goes as this many requests (fewer with fewer cases)


def run_request(item: RunItem, **fields: Any) -> RunRequest:
    if isinstance(item, RunRequest):
        return item.model_copy(update=fields) if fields else item
    if isinstance(item, str):
        return RunRequest(code=item, **fields)
    return RunRequest(**{**item, **fields})


def judge_request(code: str | JudgeRequest, cases: Sequence[JudgeCase | dict[str, Any]] | None,
                  fields: dict[str, Any]) -> JudgeRequest:
    """The judging asked: a JudgeRequest given takes `fields` (and `cases`, when given) over its own."""
    if isinstance(code, JudgeRequest):
        if cases is not None:
            fields = {**fields, "cases": [JudgeCase.model_validate(case) for case in cases]}
        return code.model_copy(update=fields) if fields else code
    return JudgeRequest(code=code, cases=list(cases or ()), **fields)


def body(model: RunRequest | JudgeRequest) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def batch_body(requests: Sequence[RunRequest], priority: Priority | str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"items": [body(r) for r in requests]}
    if priority is not None:
        payload["priority"] = str(priority)
    return payload


def chunks(items: Sequence[RunRequest], size: int) -> list[Sequence[RunRequest]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def needs_retry(results: Sequence[RunResult | None]) -> list[int]:
    return [i for i, r in enumerate(results) if r is None or r.outcome is Outcome.SANDBOX_ERROR]


def record(results: list[RunResult | None], place: int, result: RunResult, done: Tally) -> None:
    """A run's result in its place; counted as done unless it is ours to send again."""
    results[place] = result
    if result.outcome is not Outcome.SANDBOX_ERROR:
        done()


def finished(results: Sequence[RunResult | None], attempt: int, policy: RetryPolicy,
             done: Tally) -> bool:
    """True once no run needs sending again, or the retries are spent (our failures are then
    counted as done and returned as they are)."""
    left = len(needs_retry(results))
    if left and not policy.spent(attempt):
        return False
    done(left)
    return True


def take_line(line: str, sent: Sequence[int], pending: set[int]) -> tuple[int, RunResult]:
    """A line of a streamed batch: (place among the runs of the batch, result); no longer pending."""
    answer = BatchLine.model_validate_json(line)
    pending.discard(sent[answer.index])
    return sent[answer.index], answer.result


def batch_finished(pending: set[int], attempt: int, policy: RetryPolicy) -> bool:
    """True once every run of a streamed batch is answered; raises when answers ended short and the
    retries are spent; False to send the unanswered runs again."""
    if not pending:
        return True
    if policy.spent(attempt):
        raise httpx.RemoteProtocolError(f"{len(pending)} runs of the batch got no result")
    return False


def judge_failed_us(result: JudgeResult) -> bool:
    return any(case.verdict is Verdict.SANDBOX_ERROR for case in result.cases)


def headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def judge_parts(request: JudgeRequest) -> list[JudgeRequest]:
    """The judging as consecutive runs of its cases, each a judging of its own (it has cases)."""
    size = -(-len(request.cases) // JUDGE_PARTS)
    return [request.model_copy(update={"cases": request.cases[i:i + size]})
            for i in range(0, len(request.cases), size)]


def merge_judged(request: JudgeRequest, answers: Sequence[JudgeResult]) -> JudgeResult:
    """The parts' answers as the judging's own: cases numbered in the whole, and with
    stop_on_first_failure every case after the first failure (in order) skipped."""
    cases: list[CaseResult] = []
    for answer in answers:
        offset = len(cases)
        cases += [case.model_copy(update={"index": offset + case.index}) for case in answer.cases]
    if request.stop_on_first_failure:
        failed = next((case.index for case in cases if case.verdict is not Verdict.PASSED), None)
        if failed is not None:
            cases = cases[:failed + 1] + [skipped(case.index, failed) for case in cases[failed + 1:]]
    passed = sum(case.verdict is Verdict.PASSED for case in cases)
    return JudgeResult(passed=passed, total=len(cases), pass_rate=passed / len(cases), cases=cases)


def skipped(index: int, failed: int) -> CaseResult:
    return CaseResult(index=index, verdict=Verdict.SKIPPED,
                      message=f"not judged: case {failed} failed first", result=None)
