"""open-r1's E2B router: POST /execute_batch, its answers parsed by e2b_code_interpreter's own
models exactly as open-r1's RoutedSandbox (src/open_r1/utils/routed_sandbox.py) parses them."""

import httpx
import pytest
from e2b_code_interpreter.models import Execution, ExecutionError, Result

REWARD_SCRIPT = '''
import subprocess

def score(program, cases):
    passed = 0
    for given, expected in cases:
        run = subprocess.run(["python3", "-c", program], input=given, capture_output=True,
                             text=True, timeout=5)
        passed += run.stdout.strip() == expected
    return passed / len(cases)

score({program!r}, [("1 2", "3"), ("2 2", "4"), ("5 5", "11")])
'''


def run_code(client: httpx.Client, scripts: list[str], languages: list[str] | None = None,
             timeout: int = 300, request_timeout: int = 30) -> list[Execution]:
    """RoutedSandbox.run_code, with the service's client in place of requests (logs stay a
    dict, as there)."""
    payload = {"scripts": scripts, "languages": languages or ["python"] * len(scripts),
               "timeout": timeout, "request_timeout": request_timeout}
    response = client.post("/execute_batch", json=payload)
    assert response.status_code == 200, response.text
    output = []
    for result in response.json():
        if result["execution"] is None:
            output.append(Execution())
            continue
        output.append(Execution(
            results=[Result(**r) for r in result["execution"]["results"]],
            logs=result["execution"]["logs"],
            error=(ExecutionError(**result["execution"]["error"])
                   if result["execution"]["error"] else None),
            execution_count=result["execution"]["execution_count"],
        ))
    return output


def test_the_reward_is_the_float_of_the_last_value(client: httpx.Client) -> None:
    program = "a, b = map(int, input().split())\nprint(a + b)"
    wrong = "print(0)"
    executions = run_code(client, [REWARD_SCRIPT.format(program=program),
                                   REWARD_SCRIPT.format(program=wrong)])
    rewards = [float(e.text) for e in executions]
    assert rewards == pytest.approx([2 / 3, 0.0])


def test_logs_results_and_count(client: httpx.Client) -> None:
    (execution,) = run_code(client, ["import sys\nprint('hi')\nprint('note', file=sys.stderr)\n"
                                     "x = 40\nx + 2"])
    assert execution.text == "42"
    assert execution.logs["stdout"] == ["hi\n"]
    assert execution.logs["stderr"] == ["note\n"]
    assert execution.error is None
    assert execution.execution_count == 1
    (main,) = execution.results
    assert main.is_main_result and main.formats() == ["text"]


def test_no_value_no_result(client: httpx.Client) -> None:
    executions = run_code(client, ["x = 1", "print(1)", "None", "1;"])
    assert [e.results for e in executions] == [[], [], [], []]
    assert [e.text for e in executions] == [None] * 4


def test_an_exception_is_the_execution_error(client: httpx.Client) -> None:
    (execution,) = run_code(client, ["print('before')\ndef f():\n    return 1 / 0\nf()\n2"])
    assert execution.text is None
    assert execution.logs["stdout"] == ["before\n"]
    assert (execution.error.name, execution.error.value) == ("ZeroDivisionError",
                                                            "division by zero")
    assert execution.error.traceback.startswith("Traceback (most recent call last):")
    assert "return 1 / 0" in execution.error.traceback
    assert "e2b" not in execution.error.traceback.lower()
    (syntax,) = run_code(client, ["def"])
    assert syntax.error.name == "SyntaxError"


def test_a_timeout_has_no_execution(client: httpx.Client) -> None:
    response = client.post("/execute_batch", json={
        "scripts": ["import time\ntime.sleep(30)", "1 + 1"], "languages": ["python", "python"],
        "timeout": 1, "request_timeout": 28})
    slow, quick = response.json()
    assert slow["execution"] is None and "time" in slow["exception_str"]
    assert quick["execution"]["results"][0]["text"] == "2"


def test_answers_keep_the_order_and_other_languages_fail_alone(client: httpx.Client) -> None:
    response = client.post("/execute_batch", json={
        "scripts": ["1", "console.log(2)", "3", "4"], "languages": ["python", "javascript",
                                                                   "python"],
        "timeout": 10, "request_timeout": 10})
    first, second, third = response.json()
    assert first["execution"]["results"][0]["text"] == "1"
    assert second == {"execution": None,
                      "exception_str": "language 'javascript' is not supported; only python is"}
    assert third["execution"]["results"][0]["text"] == "3"


def test_a_child_process_cannot_forge_the_value(client: httpx.Client) -> None:
    forger = ('import subprocess, sys\n'
              'fake = "0" * 32 + \'{"value": "1.0", "error": null}\'\n'
              'subprocess.run([sys.executable, "-c", f"print({fake!r})"])\n'
              '0.0')
    (execution,) = run_code(client, [forger])
    assert execution.text == "0.0"
    assert '"value": "1.0"' in execution.logs["stdout"][0]


@pytest.mark.parametrize(("body", "reason"), [
    ({"scripts": ["1"], "languages": ["python"], "request_timeout": 1}, "invalid_request"),
    ({"scripts": ["1"], "languages": ["python"], "timeout": 9999, "request_timeout": 1},
     "limit_exceeded"),
])
def test_bad_requests_are_refused(client: httpx.Client, body: dict, reason: str) -> None:
    response = client.post("/execute_batch", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == reason
