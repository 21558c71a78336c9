"""/v1/judge: one program against test cases, each case a parallel job."""

import contextlib
from collections.abc import Sequence

from fastapi import APIRouter, Depends, Response

from service import judge
from service.api.auth import require_key
from service.api.batching import InvalidItem, item_specs
from service.api.caller import watch_caller
from service.api.errors import SUBMIT_ERRORS
from service.api.services import Services, get_services
from service.jobspec import JobSpec
from service.models import CaseResult, Checker, JudgeRequest, JudgeResult, Priority, RunResult
from service.priority import choose_lane
from service.submit import Submitter

router = APIRouter(prefix="/v1", tags=["judge"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])


async def run_all(submitter: Submitter, specs: Sequence[JobSpec], request: JudgeRequest,
                  nonce: str, lane: Priority) -> list[CaseResult]:
    results = await submitter.run_many(specs, lane)
    return [
        judge.judge_case(i, case, RunResult.model_validate_json(raw), nonce, request.compare,
                         request.tolerance)
        for i, (case, raw) in enumerate(zip(request.cases, results, strict=True))
    ]


async def run_to_first_failure(submitter: Submitter, specs: Sequence[JobSpec],
                               request: JudgeRequest, nonce: str,
                               lane: Priority) -> list[CaseResult]:
    """The cases after the first failure are cancelled, when not done already."""
    first_failure = judge.FirstFailure(len(specs))
    async with contextlib.aclosing(await submitter.run_as_completed(specs, lane)) as results:
        async for i, raw in results:
            verdict = judge.judge_case(i, request.cases[i], RunResult.model_validate_json(raw),
                                       nonce, request.compare, request.tolerance)
            if first_failure.add(verdict):
                break
    return first_failure.cases()


@router.post("/judge", response_model=JudgeResult, responses=SUBMIT_ERRORS)
async def judge_program(request: JudgeRequest,
                        services: Services = Depends(get_services)) -> JudgeResult | Response:
    """Run one program once per test case and give each case a verdict, and the pass rate.

    A case compares stdout with `expected_stdout` (exact, ignoring trailing whitespace, or
    numerically within a tolerance) or runs `assertion` code appended to the program; it passes
    only if the program reached the end of its assertions. With `stop_on_first_failure` the
    answer comes once the first failing case (in order) is known, and the cases after it are
    `skipped`. Any verdict `sandbox_error` is our failure: judge again.
    """
    judge.check_cases(request, services.settings.batch_limit,
                      services.settings.max_judge_bytes)
    nonce = judge.new_nonce()
    try:
        specs = item_specs(judge.case_requests(request, nonce), services.settings, "cases")
    except InvalidItem as exc:
        return exc.response()
    lane = choose_lane(request.priority, Priority.BULK, len(specs), services.settings)
    if request.checker is not None:
        return await judge_with_checker(services, specs, request, request.checker, nonce, lane)
    run = run_to_first_failure if request.stop_on_first_failure else run_all
    return judge.summarize(await run(services.submitter, specs, request, nonce, lane))


async def judge_with_checker(services: Services, specs: Sequence[JobSpec], request: JudgeRequest,
                             checker: Checker, nonce: str,
                             lane: Priority) -> JudgeResult | Response:
    """Every case runs; then the checker decides those that ran to their end (one job each,
    compiled once); with stop_on_first_failure the cases after the first failure are skipped."""
    cases = await run_all(services.submitter, specs, request, nonce, lane)
    runs = judge.checker_requests(request, checker, cases)
    try:
        checker_specs = item_specs(list(runs.values()), services.settings, "checker")
    except InvalidItem as exc:
        return exc.response()
    answers = await services.submitter.run_many(checker_specs, lane) if checker_specs else []
    results = dict(zip(runs, answers, strict=True))
    cases = [judge.checked_case(case, RunResult.model_validate_json(results[case.index]))
             if case.index in results else case for case in cases]
    if not request.stop_on_first_failure:
        return judge.summarize(cases)
    first_failure = judge.FirstFailure(len(cases))
    for case in cases:
        if first_failure.add(case):
            break
    return judge.summarize(first_failure.cases())
