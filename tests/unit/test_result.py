"""The one result type (service/result.py) against the API's schema (models.RunResult): every
builder's encoding validates as it, and the two name the same fields."""

import dataclasses

import orjson
import pytest

from service import models
from service.models import JobState, Outcome, SessionState
from service.result import (
    ExecutionResult,
    Timing,
    cancelled,
    encode_status,
    from_report,
    not_run,
    sandbox_error,
)
from service.wire import now_ms

REPORT = {"exit_code": None, "signal": 9, "stdout": "é\x00", "stderr": "",
          "stdout_truncated": True, "stderr_truncated": False, "run_ms": 1000.5,
          "cpu_ms": 998.0, "cpu_wait_ms": 0.25}
# The fields some results add (ExecutionResult.extra), by the schema they belong to.
EXTRA = {"files", "files_truncated", "compile"}
CELL_EXTRA = {"value", "session_id", "session_state"}


def run_result(result: ExecutionResult) -> dict:
    encoded = result.encode()
    models.RunResult.model_validate_json(encoded)
    return orjson.loads(encoded)


def test_the_type_names_the_schemas_fields() -> None:
    fields = {f.name for f in dataclasses.fields(ExecutionResult)} - {"extra"}
    assert fields | EXTRA == set(models.RunResult.model_fields)
    assert set(models.SessionRunResult.model_fields) - set(models.RunResult.model_fields) == \
        CELL_EXTRA
    assert {f.name for f in dataclasses.fields(Timing)} == set(models.Timing.model_fields)


def test_a_reported_execution_encodes_as_a_run_result() -> None:
    report = {**REPORT, "files": {"a.png": "eA=="}, "files_truncated": False}
    body = run_result(from_report("j1", report, Outcome.TIMEOUT, "time limit", 3.14159, 1010.0))
    assert body == {
        "id": "j1", "outcome": "timeout", "exit_code": None, "signal": 9, "stdout": "é\x00",
        "stderr": "", "stdout_truncated": True, "stderr_truncated": False,
        "timing": {"queue_ms": 3.142, "run_ms": 1000.5, "cpu_ms": 998.0, "cpu_wait_ms": 0.25,
                   "total_ms": 1010.0},
        "message": "time limit",
        "files": {"a.png": {"base64": "eA==", "media_type": "image/png"}},
        "files_truncated": False,
    }
    assert "files" not in run_result(from_report("j2", REPORT, Outcome.OK, None, 0, 0))


@pytest.mark.parametrize("result", [
    sandbox_error("j", "no sandbox", now_ms() - 50),
    sandbox_error("j", "no sandbox"),
    cancelled("j", "cancelled while running"),
    not_run("j", Outcome.COMPILE_ERROR, "compilation failed", 12.0),
], ids=["sandbox_error", "sandbox_error_unqueued", "cancelled", "compile_error"])
def test_a_result_without_a_run_encodes_as_a_run_result(result: ExecutionResult) -> None:
    body = run_result(result)
    assert (body["exit_code"], body["stdout"], body["timing"]["cpu_ms"]) == (None, "", None)
    assert body["timing"]["run_ms"] == 0.0
    assert body["timing"]["total_ms"] == body["timing"]["queue_ms"] >= 0


def test_a_cells_result_encodes_as_a_session_run_result() -> None:
    result = from_report("c1", REPORT, Outcome.OK, None, 0.0, 5.0)
    result.extra.update(value="42", session_id="s1", session_state=SessionState.OPEN)
    cell = models.SessionRunResult.model_validate_json(result.encode())
    assert (cell.value, cell.session_state, cell.timing.total_ms) == ("42", "open", 5.0)


def test_a_job_status_embeds_its_result_as_it_is() -> None:
    result = cancelled("j", "cancelled while running")
    status = models.JobCancel.model_validate_json(
        encode_status("j", JobState.DONE, result.encode(), cancelled=True))
    assert (status.id, status.state, status.cancelled) == ("j", JobState.DONE, True)
    assert status.result == models.RunResult.model_validate_json(result.encode())
    queued = orjson.loads(encode_status('a"b', JobState.QUEUED, None))
    assert queued == {"id": 'a"b', "state": "queued", "result": None}
