"""NeMo-Skills' sandbox API: POST /execute, GET /sessions, DELETE /sessions/{id}, GET /health.

Requests are sent as their client (nemo_skills/code_execution/sandbox.py, LocalSandbox) sends
them, and the answers checked against their own tests' expectations (tests/test_code_execution.py)
where these exist.
"""

import json
import uuid

import httpx
import pytest


class NemoSandbox:
    """LocalSandbox's requests: the session id goes in X-Session-ID, an ipython call without one
    gets a new uuid4, and `new_session_created` is taken out of the answer."""

    def __init__(self, client: httpx.Client):
        self.client = client
        self.sessions: set[str] = set()

    def execute_code(self, code: str, std_input: str = "", language: str = "ipython",
                     timeout: float = 10.0, max_output_characters: int = 1000,
                     session_id: str | None = None, traceback_verbosity: str = "plain"
                     ) -> tuple[dict, str | None]:
        answer, session_id = self.send(code, std_input, language, timeout, max_output_characters,
                                       session_id, traceback_verbosity)
        answer.pop("new_session_created", None)
        return answer, session_id

    def send(self, code: str, std_input: str = "", language: str = "ipython",
             timeout: float = 10.0, max_output_characters: int = 1000,
             session_id: str | None = None, traceback_verbosity: str = "plain"
             ) -> tuple[dict, str | None]:
        if session_id is None and language == "ipython":
            session_id = str(uuid.uuid4())
        request = {"generated_code": code, "std_input": std_input, "timeout": timeout,
                   "language": language, "max_output_characters": max_output_characters,
                   "traceback_verbosity": traceback_verbosity.capitalize()}
        headers = {"Content-Type": "application/json"}
        if session_id is not None:
            headers["X-Session-ID"] = session_id
            self.sessions.add(session_id)
        response = self.client.post("/execute", content=json.dumps(request), headers=headers,
                                    timeout=timeout + 5.0)
        assert response.status_code == 200, response.text
        return response.json(), session_id

    def close(self) -> None:
        for session_id in self.sessions:
            self.client.delete(f"/sessions/{session_id}")


@pytest.fixture
def sandbox(client: httpx.Client):  # type: ignore[no-untyped-def]
    nemo = NemoSandbox(client)
    yield nemo
    nemo.close()


@pytest.mark.parametrize("language", ["python", "ipython", "pypy3"])
def test_triple_quotes(sandbox: NemoSandbox, language: str) -> None:
    code = '\ndef my_func():\n    """Test function"""\n    print("asdf")\nmy_func()\n'
    output, _ = sandbox.execute_code(code, language=language)
    assert output == {"process_status": "completed", "stderr": "", "stdout": "asdf\n"}


@pytest.mark.parametrize("language", ["python", "ipython"])
def test_no_output(sandbox: NemoSandbox, language: str) -> None:
    output, _ = sandbox.execute_code("a = 2", language=language)
    assert output == {"process_status": "completed", "stderr": "", "stdout": ""}


def test_execution_error_ipython_prints_the_traceback_on_stdout(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code("1 / 0")
    assert output == {
        "process_status": "error", "stderr": "",
        "stdout": "Traceback (most recent call last):\n    1 / 0\nZeroDivisionError: division by zero\n"}


def test_execution_error_python_completes_with_its_traceback(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code("1 / 0", language="python")
    assert output == {
        "process_status": "completed", "stdout": "",
        "stderr": 'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
                  'ZeroDivisionError: division by zero\n'}


def test_syntax_error(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code("a = 2\n b = 3")
    assert output == {"process_status": "error", "stderr": "",
                      "stdout": "    b = 3\n    ^\nIndentationError: unexpected indent\n"}
    output, _ = sandbox.execute_code("a = 2\n b = 3", language="python")
    assert output == {"process_status": "completed", "stdout": "",
                      "stderr": '  File "<string>", line 2\n    b = 3\n'
                                'IndentationError: unexpected indent\n'}


@pytest.mark.parametrize("language", ["python", "ipython"])
def test_timeout_then_the_same_session_goes_on(sandbox: NemoSandbox, language: str) -> None:
    code = 'import time\ntime.sleep(2)\nprint("done")'  # their test sleeps 1 s: a tie on a busy host
    output, session_id = sandbox.execute_code(code, timeout=1, language=language)
    assert output == {"process_status": "timeout", "stdout": "",
                      "stderr": "Execution timed out after 1 seconds\n"}
    output, _ = sandbox.execute_code(code, timeout=5, session_id=session_id, language=language)
    assert output == {"process_status": "completed", "stderr": "", "stdout": "done\n"}


def test_a_timed_out_cell_keeps_what_it_printed(sandbox: NemoSandbox) -> None:
    code = 'print("started", flush=True)\nimport time\ntime.sleep(30)'
    output, session_id = sandbox.execute_code(code, timeout=0.5)
    assert output == {"process_status": "timeout", "stdout": "started\n",
                      "stderr": "Execution timed out after 0.5 seconds\n"}
    output, _ = sandbox.execute_code("time.sleep(0); 'alive'", session_id=session_id)
    assert output["stdout"] == "'alive'\n"


def test_std_input(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code('print(input("something "))', language="python",
                                     std_input="new")
    assert output == {"process_status": "completed", "stderr": "", "stdout": "something new\n"}


def test_ipython_keeps_state_per_session_and_shows_the_last_value(sandbox: NemoSandbox) -> None:
    output, session_id = sandbox.execute_code("\n    a = 1\n    a\n    ")
    assert output == {"process_status": "completed", "stderr": "", "stdout": "1\n"}
    output, again = sandbox.execute_code("a + 5", session_id=session_id)
    assert output == {"process_status": "completed", "stderr": "", "stdout": "6\n"}
    assert again == session_id
    other, _ = sandbox.execute_code("'a' in globals()")
    assert other["stdout"] == "False\n"


def test_values_are_shown_as_ipython_shows_them(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code("print('x')\n{'b': 1, 'a': 2}")
    assert output["stdout"] == "x\n{'b': 1, 'a': 2}\n"
    output, _ = sandbox.execute_code("list(range(30))")
    assert output["stdout"] == "[" + ",\n ".join(map(str, range(30))) + "]\n"
    output, _ = sandbox.execute_code("x = 3;\nx;")
    assert output["stdout"] == ""


def test_a_name_error_in_a_real_generation(sandbox: NemoSandbox) -> None:
    code = ("\n# height of bamboo in inches\nheight_in_inches = 20 * 12\n"
            "# height of bamboo in inches after x days\n"
            "height_after_x_days = height_in_inches + 30 * x\n"
            "# solve for x\nx = (600 - height_in_inches) / 30\nx\n")
    output, _ = sandbox.execute_code(code)
    assert output == {"process_status": "error", "stderr": "", "stdout": (
        "Traceback (most recent call last):\n    "
        "height_after_x_days = height_in_inches + 30 * x\n"
        "NameError: name 'x' is not defined\n")}


def test_traceback_verbosity(sandbox: NemoSandbox) -> None:
    code = "def f(n):\n    return 1 / n\nf(0)"
    minimal, _ = sandbox.execute_code(code, traceback_verbosity="minimal")
    assert minimal["stdout"] == "ZeroDivisionError: division by zero\n"
    context, _ = sandbox.execute_code(code, traceback_verbosity="context")
    assert context["process_status"] == "error"
    assert "ZeroDivisionError                         Traceback (most recent call last)" \
        in context["stdout"]
    assert "----> 2     return 1 / n" in context["stdout"]


def test_shell(sandbox: NemoSandbox) -> None:
    output, session_id = sandbox.execute_code('echo "Hello, World!"', language="shell")
    assert session_id is None
    assert output == {"process_status": "completed", "stdout": "Hello, World!\n", "stderr": ""}
    output, _ = sandbox.execute_code("echo 'Hello", language="shell")
    assert output["process_status"] == "error"
    assert output["stdout"] == ""
    assert "line 1: unexpected EOF while looking for matching" in output["stderr"]
    output, _ = sandbox.execute_code("sleep 5", language="bash", timeout=1)
    assert output == {"process_status": "timeout", "stdout": "",
                      "stderr": "Execution timed out after 1 seconds\n"}


def test_output_is_cut_at_max_output_characters(sandbox: NemoSandbox) -> None:
    output, _ = sandbox.execute_code("print('x' * 50)", language="python",
                                     max_output_characters=10)
    assert output["stdout"] == "x" * 10 + "<output cut>"
    output, _ = sandbox.execute_code("'y' * 50", max_output_characters=10)
    assert output["stdout"] == "'" + "y" * 9 + "<output cut>"


def test_session_life_cycle(client: httpx.Client, sandbox: NemoSandbox) -> None:
    first, name = sandbox.send("a = 41")
    assert first["new_session_created"] is True
    second, _ = sandbox.send("a += 1; a", session_id=name)
    assert (second["stdout"], second["new_session_created"]) == ("42\n", False)
    listed = client.get("/sessions").json()
    assert listed["backend"] == "ipython"
    assert listed["sessions"][name]["alive"] is True
    assert listed["sessions"][name]["backend"] == "ipython"
    deleted = client.delete(f"/sessions/{name}")
    assert deleted.status_code == 200
    assert deleted.json() == {"message": f"IPython session {name} deleted successfully"}
    assert name not in client.get("/sessions").json()["sessions"]
    again = client.delete(f"/sessions/{name}")
    assert again.status_code == 404
    assert again.json() == {"error": f"IPython session {name} not found"}
    fresh, _ = sandbox.send("'a' in globals()", session_id=name)
    assert (fresh["stdout"], fresh["new_session_created"]) == ("False\n", True)


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


@pytest.mark.parametrize(("body", "headers", "status", "reason"), [
    ({"timeout": 1, "language": "python"}, {}, 400, "invalid_request"),
    ({"generated_code": "1", "language": "python"}, {}, 400, "invalid_request"),
    ({"generated_code": "1", "timeout": 1, "language": "lean4"}, {}, 400, "unsupported_language"),
    ({"generated_code": "1", "timeout": 1, "traceback_verbosity": "Loud"}, {"X-Session-ID": "s"},
     400, "invalid_request"),
    ({"generated_code": "1", "timeout": 9999, "language": "python"}, {}, 422, "limit_exceeded"),
])
def test_bad_requests_are_refused(client: httpx.Client, body: dict, headers: dict, status: int,
                                  reason: str) -> None:
    response = client.post("/execute", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == reason
    assert response.json()["process_status"] == "error"


def test_ipython_without_a_session_id_is_refused_as_their_server_does(
        client: httpx.Client) -> None:
    response = client.post("/execute", json={"generated_code": "1", "timeout": 1})
    assert response.status_code == 400
    assert response.json() == {"error": "X-Session-ID header required for ipython sessions"}
