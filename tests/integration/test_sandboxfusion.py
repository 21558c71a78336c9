"""SandboxFusion's API, proven with its own client (the `sandbox-fusion` package) and with the
exact request verl's reward code sends, read the way verl reads the answer."""

import base64
import json

import httpx
import pytest
import requests
from sandbox_fusion import (
    RunCodeRequest,
    RunStatus,
    SummaryMapping,
    run_code,
    run_code_async,
    summary_run_code_result,
)

from tests.support import Service, api_only, free_port, full_queue


@pytest.fixture(scope="module")
def endpoint(service: Service) -> str:
    return service.base_url


def fusion(endpoint: str, **fields):
    return run_code(RunCodeRequest(language="python", **fields), endpoint=endpoint,
                    max_attempts=1, client_timeout=60)


# --- the sandbox-fusion client --------------------------------------------------------------------

def test_client_success(endpoint: str) -> None:
    response = fusion(endpoint, code="print(input()[::-1])", stdin="olleh")
    assert response.status == RunStatus.Success
    assert response.message == ""
    assert response.compile_result is None
    assert response.run_result.status == "Finished"
    assert response.run_result.return_code == 0
    assert response.run_result.stdout == "hello\n"
    assert response.run_result.stderr == ""
    assert response.run_result.execution_time > 0
    assert response.files == {}


def test_client_failure_and_summary(endpoint: str) -> None:
    response = fusion(endpoint, code="import sys\nprint('partial')\nsys.exit(4)")
    assert response.status == RunStatus.Failed
    assert (response.run_result.status, response.run_result.return_code) == ("Finished", 4)
    assert response.run_result.stdout == "partial\n"
    mapping = SummaryMapping(Success="ok", Failed="bad", RunFailed="run failed",
                             RunTimeout="run timeout")
    assert summary_run_code_result(response, mapping) == "run failed"
    timed_out = fusion(endpoint, code="while True: pass", run_timeout=1)
    assert timed_out.status == RunStatus.Failed
    assert timed_out.run_result.status == "TimeLimitExceeded"
    assert timed_out.run_result.return_code is None
    assert summary_run_code_result(timed_out, mapping) == "run timeout"


def test_client_files(endpoint: str) -> None:
    blob = bytes(range(256))
    files = {"data/b.bin": base64.b64encode(blob).decode(), "skipped.txt": None}
    code = ("import os\nprint(open('data/b.bin', 'rb').read() == bytes(range(256)), "
            "os.path.exists('skipped.txt'))")
    response = fusion(endpoint, code=code, files=files)
    assert response.status == RunStatus.Success, response
    assert response.run_result.stdout == "True False\n"


async def test_async_client(endpoint: str) -> None:
    response = await run_code_async(RunCodeRequest(code="print(6 * 7)", language="python"),
                                    endpoint=endpoint, max_attempts=1, client_timeout=60)
    assert response.status == RunStatus.Success
    assert response.run_result.stdout == "42\n"


# --- verl's request, read as verl reads it --------------------------------------------------------

def verl_request(url: str, code: str, stdin: str, timeout: int = 10) -> requests.Response:
    """What verl's call_sandbox_api sends (verl/utils/reward_score/sandbox_fusion/utils.py)."""
    payload = json.dumps({
        "compile_timeout": timeout,
        "run_timeout": timeout,
        "code": code,
        "stdin": stdin,
        "memory_limit_MB": 1024,
        "language": "python",
        "files": {},
        "fetch_files": [],
    })
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return requests.post(url, headers=headers, data=payload, timeout=timeout * 2 + 10)


def verl_verdict(api_response: dict, expected_output: str) -> bool | int:
    """verl's reading of one answer: True/False, or -1 (sandbox), -2 (runtime), -3 (timeout),
    -4 (compile)."""
    status = api_response.get("status")
    compile_result = api_response.get("compile_result")
    run_result = api_response.get("run_result")
    if status == "SandboxError":
        return -1
    if status == "Failed":
        if compile_result and (compile_result.get("status") in ("Error", "TimeLimitExceeded") or (
                compile_result.get("status") == "Finished" and compile_result.get("return_code"))):
            return -4
        if run_result:
            run_status = run_result.get("status")
            if run_status == "TimeLimitExceeded":
                return -3
            if run_status == "Error" or (run_status == "Finished" and run_result.get("return_code")):
                return -2
        return -1
    if status == "Success" and run_result and run_result.get("status") == "Finished":
        stdout = run_result.get("stdout")
        actual = stdout if stdout is not None else ""
        return str(actual).rstrip("\n") == str(expected_output).rstrip("\n")
    return -1


SOLUTION = "n = int(input())\nprint(n * n)\n"


@pytest.mark.parametrize(("code", "stdin", "expected", "verdict"), [
    (SOLUTION, "7", "49", True),
    (SOLUTION, "7\n", "49\n", True),
    (SOLUTION, "7", "50", False),
    ("print(int(input()) * 2)", "7", "49", False),
    ("raise ValueError('no')", "7", "49", -2),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "", "", -2),
    ("while True: pass", "7", "49", -3),
    ("x = bytearray(50 << 30)", "", "", -2),
])
def test_verl_payload(endpoint: str, code: str, stdin: str, expected: str,
                      verdict: bool | int) -> None:
    response = verl_request(f"{endpoint}/run_code", code, stdin, timeout=2)
    assert response.status_code == 200, response.text
    assert verl_verdict(response.json(), expected) == verdict


def test_response_shape(endpoint: str) -> None:
    cases = ["print('x')", "import sys; sys.exit(2)", "while True: pass",
             "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    for code in cases:
        body = verl_request(f"{endpoint}/run_code", code, "", timeout=1).json()
        assert set(body) == {"status", "message", "compile_result", "run_result",
                             "executor_pod_name", "files"}, code
        assert body["compile_result"] is None
        run = body["run_result"]
        assert set(run) == {"status", "execution_time", "return_code", "stdout", "stderr"}
        assert isinstance(run["stdout"], str) and isinstance(run["stderr"], str)
        assert isinstance(body["message"], str)
    killed = verl_request(f"{endpoint}/run_code", cases[3], "", timeout=1).json()
    assert (killed["status"], killed["run_result"]["return_code"]) == ("Failed", -9)


def test_defaults_and_unknown_fields(client: httpx.Client) -> None:
    response = client.post("/run_code", json={"code": "print('hi')", "args": ["-x"],
                                              "memory_limit_MB": 0, "kernel": "python3"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Success"
    assert response.json()["run_result"]["stdout"] == "hi\n"


def test_memory_limit(client: httpx.Client) -> None:
    code = "a = []\nwhile True: a.append(bytearray(16 << 20))"
    body = client.post("/run_code", json={"code": code, "memory_limit_MB": 64}).json()
    assert body["status"] == "Failed"
    assert body["run_result"]["return_code"] != 0
    assert "memory" in body["message"]


def test_ping(client: httpx.Client) -> None:
    response = client.get("/v1/ping")
    assert response.status_code == 200
    assert response.json() == "pong"


def test_refusals(client: httpx.Client) -> None:
    for body, reason in [({"code": "puts 1", "language": "ruby"}, "unsupported_language"),
                         ({"code": "1", "fetch_files": ["/etc/passwd"]}, "invalid_return_files"),
                         ({"code": "1", "run_timeout": 0}, "invalid_request"),
                         ({"code": "1", "run_timeout": 10_000}, "limit_exceeded"),
                         ({"language": "python"}, "invalid_request")]:
        response = client.post("/run_code", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"] == reason


def test_full_queue_is_a_gateway_timeout(redis_url: str) -> None:
    with full_queue(redis_url) as client:
        response = verl_request(f"{client.base_url}/run_code", "print(1)", "")
        assert response.status_code == 504
        assert response.json()["error"] == "queue_full"
        assert int(response.headers["retry-after"]) >= 1


def test_unreachable_queue_is_a_gateway_timeout() -> None:
    with api_only(f"redis://127.0.0.1:{free_port()}/0") as service:
        response = verl_request(f"{service.base_url}/run_code", "print(1)", "")
        assert response.status_code == 504
        assert response.json()["error"] == "queue_unavailable"
        assert response.headers["retry-after"]


def test_fetch_files(client: httpx.Client) -> None:
    code = "open('out.txt', 'w').write('written'); open('b[1].bin', 'wb').write(bytes([0, 255]))"
    body = client.post("/run_code", json={"code": code,
                                          "fetch_files": ["out.txt", "b[1].bin", "absent.txt"]})
    assert body.status_code == 200
    files = body.json()["files"]
    assert base64.b64decode(files["out.txt"]) == b"written"
    assert base64.b64decode(files["b[1].bin"]) == bytes([0, 255])
    assert "absent.txt" not in files


def test_fetch_files_from_tmp_and_mnt(client: httpx.Client) -> None:
    code = ("open('/mnt/out.txt', 'w').write('m')\nopen('/tmp/t.txt', 'w').write('t')\n"
            "open('rel.txt', 'w').write('r')\n")
    body = client.post("/run_code", json={
        "code": code, "language": "python",
        "fetch_files": ["/mnt/out.txt", "/tmp/t.txt", "rel.txt", "/mnt/missing"]}).json()
    assert body["status"] == "Success", body
    assert {k: base64.b64decode(v) for k, v in body["files"].items()} == {
        "/mnt/out.txt": b"m", "/tmp/t.txt": b"t", "rel.txt": b"r"}
    after = client.post("/run_code", json={"code": "import os; print(os.listdir('/mnt'))",
                                           "language": "python"}).json()
    assert after["run_result"]["stdout"] == "[]\n"  # cleaned up like /tmp
