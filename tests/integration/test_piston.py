"""Piston's API v2: POST /api/v2/execute and GET /api/v2/runtimes, as Piston's clients use them."""

import base64

import httpx
import pytest

from tests.support import full_queue


def execute(client: httpx.Client, content: str, **fields) -> dict:
    body = {"language": "python", "version": "3.x",
            "files": [{"name": "solution.py", "content": content}], **fields}
    response = client.post("/api/v2/execute", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_runtimes_name_the_sandbox_python(client: httpx.Client) -> None:
    response = client.get("/api/v2/runtimes")
    assert response.status_code == 200
    (runtime,) = response.json()
    assert runtime["language"] == "python"
    assert "py" in runtime["aliases"]
    actual = execute(client, "import platform; print(platform.python_version())")
    assert actual["run"]["stdout"] == runtime["version"] + "\n"


def test_hello(client: httpx.Client) -> None:
    body = execute(client, "import sys\nprint(input()[::-1])\nprint('note', file=sys.stderr)",
                   stdin="olleh", run_timeout=3000)
    assert (body["language"], body["version"]) == ("python", "3.11.2")
    run = body["run"]
    assert (run["stdout"], run["stderr"]) == ("hello\n", "note\n")
    assert run["output"] == "hello\nnote\n"
    assert (run["code"], run["signal"], run["status"], run["message"]) == (0, None, None, None)
    assert run["wall_time"] > 0
    assert "compile" not in body


@pytest.mark.parametrize(("language", "version"), [
    ("python", "3.11.2"), ("python", "*"), ("py", "3"), ("python3", "3.11"), ("py3", "3.x.x")])
def test_language_aliases_and_versions(client: httpx.Client, language: str, version: str) -> None:
    assert execute(client, "print(1)", language=language, version=version)["run"]["stdout"] == "1\n"


def test_extra_files(client: httpx.Client) -> None:
    files = [
        {"name": "main_solution.py", "content": "import helper\nprint(helper.VALUE, "
         "open('blob.bin', 'rb').read(), open('hex.bin', 'rb').read(), open('file4.code').read())"},
        {"name": "helper.py", "content": "VALUE = 42"},
        {"name": "blob.bin", "content": base64.b64encode(b"\x00\x01").decode(), "encoding": "base64"},
        {"name": "hex.bin", "content": "ff10", "encoding": "hex"},
        {"content": "unnamed"},
    ]
    body = execute(client, "", files=files)
    assert body["run"]["stdout"] == "42 b'\\x00\\x01' b'\\xff\\x10' unnamed\n", body


def test_runtime_error(client: httpx.Client) -> None:
    run = execute(client, "raise SystemExit(3)")["run"]
    assert (run["code"], run["signal"], run["status"]) == (3, None, "RE")
    assert run["message"] == "Exited with error status 3"


def test_timeout(client: httpx.Client) -> None:
    run = execute(client, "print('started', flush=True)\nwhile True: pass", run_timeout=1000)["run"]
    assert (run["code"], run["signal"], run["status"]) == (None, "SIGKILL", "TO")
    assert run["stdout"] == "started\n"


def test_signal(client: httpx.Client) -> None:
    run = execute(client, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")["run"]
    assert (run["code"], run["signal"], run["status"]) == (None, "SIGSEGV", "SG")


def test_output_limit(client: httpx.Client) -> None:
    run = execute(client, "import sys\nwhile True: sys.stderr.write('e' * 4096)")["run"]
    assert (run["status"], run["signal"]) == ("EL", "SIGKILL")
    assert len(run["stderr"]) == 1 << 20


def test_memory_limit(client: httpx.Client) -> None:
    code = "a = []\nwhile True: a.append(bytearray(16 << 20))"
    run = execute(client, code, run_memory_limit=64 * 1024 * 1024)["run"]
    assert run["status"] in ("SG", "RE")
    assert "memory" in run["message"]
    assert execute(client, "print(1)", run_memory_limit=-1)["run"]["code"] == 0


@pytest.mark.parametrize(("fields", "reason", "message"), [
    ({"version": "3.10.0"}, "unsupported_language", "python-3.10.0 runtime is unknown"),
    ({"language": "javascript"}, "unsupported_language", "javascript-3.x runtime is unknown"),
    ({"files": []}, "invalid_request", "files must include at least one utf8 encoded file"),
    ({"files": [{"content": "AA==", "encoding": "base64"}]}, "invalid_request", None),
    ({"files": [{"content": "print(1)"}, {"name": "main.py", "content": ""}]},
     "invalid_file_name", None),
    ({"files": [{"content": "1"}, {"name": "x", "content": "zz", "encoding": "hex"}]},
     "invalid_hex", None),
    ({"version": None}, "invalid_request", None),
    ({"run_timeout": 10_000_000}, "limit_exceeded", None),
    ({"run_memory_limit": 10**400}, "limit_exceeded", None),
])
def test_refusals(client: httpx.Client, fields: dict, reason: str, message: str | None) -> None:
    body = {"language": "python", "version": "3.x", "files": [{"content": "print(1)"}], **fields}
    response = client.post("/api/v2/execute", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == reason
    assert response.json()["message"] == message if message else response.json()["message"]


def test_args_become_argv(client: httpx.Client) -> None:
    code = "import sys; print(sys.argv[1:])"
    assert execute(client, code, args=[])["run"]["stdout"] == "[]\n"
    assert execute(client, code, args=["1", "two words"])["run"]["stdout"] == "['1', 'two words']\n"


def test_full_queue(redis_url: str) -> None:
    with full_queue(redis_url) as client:
        response = client.post("/api/v2/execute", json={
            "language": "python", "version": "*", "files": [{"content": "print(1)"}]})
        assert response.status_code == 429
        assert response.json()["message"]
        assert "retry-after" in response.headers
