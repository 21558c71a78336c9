"""open-r1's E2B router (huggingface/open-r1, scripts/e2b_router.py): `POST /execute_batch`, as
open-r1's RoutedSandbox and TRL's code rewards call it.

Each script runs once, as a notebook cell in a fresh sandbox (see e2b_program.py); the answer is
a list, in order, of `{execution, exception_str}` where `execution` is the dataclass layout of
e2b_code_interpreter's Execution: `results` holds the cell's value as the main result's `text`
(open-r1 takes `float(execution.text)` as the reward), `logs` what it printed, `error` the
exception that ended it. A run that did not end by itself (its timeout, its memory, our failure)
has no execution and says why in `exception_str`, as the router's does when a sandbox fails.
"""

import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from service.api.auth import require_key
from service.api.batching import InvalidItem, item_specs
from service.api.caller import watch_caller
from service.api.compat.e2b_program import program
from service.api.errors import error_response
from service.api.responses import JsonResponse
from service.api.services import Services, get_services
from service.models import Outcome, RunRequest

router = APIRouter(tags=["compat: E2B router"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])

PYTHON = "python"
NONCE = re.compile(r"[0-9a-f]{32}")
RESULT_FORMATS = ("html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "json",
                  "javascript", "data", "chart")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scripts: list[str]
    languages: list[str]
    timeout: int
    request_timeout: int  # the router's limit on creating a sandbox; nothing waits for one here


def main_result(text: str) -> dict[str, Any]:
    return {"text": text, **dict.fromkeys(RESULT_FORMATS), "is_main_result": True, "extra": None}


def split_report(stdout: str) -> tuple[str, dict[str, Any]] | None:
    """The script's own stdout and the program's report; None if the report is not there."""
    first = stdout.find("\n")
    nonce = stdout[:first]
    if first < 0 or not NONCE.fullmatch(nonce):
        return None
    at = stdout.rfind("\n" + nonce, first)
    if at < 0:
        return None
    line_end = stdout.find("\n", at + 1)
    if line_end < 0:
        return None
    report = orjson.loads(stdout[at + 1 + len(nonce):line_end])
    return stdout[first + 1:at] + stdout[line_end + 1:], report


def script_result(result: dict[str, Any]) -> dict[str, Any]:
    outcome = result["outcome"]
    split = split_report(result["stdout"]) if outcome in (Outcome.OK, Outcome.ERROR) else None
    if split is None:
        why = result.get("message") or f"the script ended with outcome {outcome}"
        return {"execution": None, "exception_str": why}
    stdout, report = split
    value = report.get("value")
    execution = {
        "results": [main_result(value)] if value is not None else [],
        "logs": {"stdout": [stdout] if stdout else [],
                 "stderr": [result["stderr"]] if result["stderr"] else []},
        "error": report.get("error"),
        "execution_count": 1,
    }
    return {"execution": execution, "exception_str": None}


def unsupported(language: str) -> dict[str, Any]:
    return {"execution": None, "exception_str": f"language {language!r} is not supported; "
                                                "only python is"}


@router.post("/execute_batch")
async def execute_batch(batch: BatchRequest,
                        services: Services = Depends(get_services)) -> JsonResponse:
    """Run each script as a notebook cell in a fresh sandbox; the answers in order."""
    pairs = list(zip(batch.scripts, batch.languages, strict=False))
    if len(pairs) > services.settings.max_batch_items:
        return error_response(422, "batch_too_large",
                              f"at most {services.settings.max_batch_items} scripts")
    python = [i for i, (_, language) in enumerate(pairs) if language == PYTHON]
    runs = [RunRequest(code=program(pairs[i][0]), timeout=batch.timeout) for i in python]
    try:
        specs = item_specs(runs, services.settings, "scripts", wall_clock=True)
    except InvalidItem as exc:  # its place among all the scripts, not the python ones
        return InvalidItem("scripts", python[exc.index], exc.cause).response()
    answers = [unsupported(language) for _, language in pairs]
    results = await services.submitter.run_many(specs) if specs else []
    for index, result in zip(python, results, strict=True):
        answers[index] = script_result(orjson.loads(result))
    return JsonResponse(answers)
