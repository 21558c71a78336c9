"""POST /v1/judge: one program against test cases, run as parallel jobs in the sandbox."""

import httpx

from tests.support import full_queue

ADD = "def add(a, b):\n    return a + b\n"


def judge(client: httpx.Client, code: str, cases: list[dict], **fields) -> dict:
    response = client.post("/v1/judge", json={"code": code, "cases": cases, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def verdicts(result: dict) -> list[str]:
    return [case["verdict"] for case in result["cases"]]


def test_stdin_and_expected_stdout(client: httpx.Client) -> None:
    code = "a, b = map(int, input().split())\nprint(a + b)"
    cases = [{"stdin": "1 2", "expected_stdout": "3"},
             {"stdin": "5 5\n", "expected_stdout": "10\n\n"},
             {"stdin": "2 2", "expected_stdout": "5"},
             {"stdin": "x y", "expected_stdout": "0"}]
    result = judge(client, code, cases)
    assert verdicts(result) == ["passed", "passed", "wrong_answer", "runtime_error"]
    assert (result["passed"], result["total"], result["pass_rate"]) == (2, 4, 0.5)
    assert result["cases"][2]["message"] == "line 1: expected '5', got '4'"
    assert result["cases"][3]["message"].startswith("ValueError: invalid literal")
    assert [case["index"] for case in result["cases"]] == [0, 1, 2, 3]
    assert result["cases"][0]["result"]["stdout"] == "3\n"


def test_assertions(client: httpx.Client) -> None:
    cases = [{"assertion": "assert add(2, 2) == 4"},
             {"assertion": "assert add(-1, 1) == 0\nassert add('a', 'b') == 'ab'"},
             {"assertion": "assert add(2, 2) == 5, 'two and two'"}]
    result = judge(client, ADD + "print('defined')", cases)
    assert verdicts(result) == ["passed", "passed", "wrong_answer"]
    assert result["cases"][2]["message"] == "an assertion failed: AssertionError: two and two"
    for case in result["cases"]:
        assert case["result"]["stdout"] == "defined\n", "the end marker is removed"


def test_exiting_before_the_assertions_does_not_pass(client: httpx.Client) -> None:
    cases = [{"assertion": "assert add(2, 2) == 5"}]
    for ending in ("exit(0)", "import sys; sys.exit()", "import os; os._exit(0)",
                   "raise SystemExit", "import sys; sys.stdout.flush(); quit()"):
        result = judge(client, ADD + ending, cases)
        assert verdicts(result) == ["exited_early"], ending
        assert result["pass_rate"] == 0


def test_hidden_stdout_does_not_hide_the_marker(client: httpx.Client) -> None:
    code = ADD + "import io, sys\nsys.stdout = io.StringIO()\nprint('swallowed')"
    result = judge(client, code, [{"assertion": "assert add(1, 1) == 2"}])
    assert verdicts(result) == ["passed"]
    assert result["cases"][0]["result"]["stdout"] == ""


def test_assertions_with_expected_stdout(client: httpx.Client) -> None:
    code = ADD + "print(add(20, 22))"
    cases = [{"assertion": "assert add(1, 2) == 3", "expected_stdout": "42"},
             {"assertion": "assert add(1, 2) == 3", "expected_stdout": "41"}]
    assert verdicts(judge(client, code, cases)) == ["passed", "wrong_answer"]


def test_compare_modes(client: httpx.Client) -> None:
    code = "print('0.3333333 ')\nprint()"
    cases = [{"expected_stdout": "0.33333333"}]
    assert verdicts(judge(client, code, cases, compare="exact")) == ["wrong_answer"]
    assert verdicts(judge(client, code, cases, compare="trailing_whitespace")) == ["wrong_answer"]
    assert verdicts(judge(client, code, cases, compare="numeric")) == ["passed"]
    assert verdicts(judge(client, code, cases, compare="numeric", tolerance=1e-12)) == [
        "wrong_answer"]
    exact = [{"expected_stdout": "0.3333333 \n\n"}]
    assert verdicts(judge(client, code, exact, compare="exact")) == ["passed"]
    trimmed = [{"expected_stdout": "0.3333333"}]
    assert verdicts(judge(client, code, trimmed)) == ["passed"]


def test_limits_give_their_verdicts(client: httpx.Client) -> None:
    code = ("import sys\nmode = sys.stdin.read()\n"
            "if mode == 'spin':\n    while True: pass\n"
            "if mode == 'eat':\n    a = []\n    while True: a.append(bytearray(32 << 20))\n"
            "print('fine')")
    cases = [{"stdin": "spin", "expected_stdout": "fine"},
             {"stdin": "", "expected_stdout": "fine"}]
    assert verdicts(judge(client, code, cases, timeout=1)) == ["timeout", "passed"]
    cases = [{"stdin": "eat", "expected_stdout": "fine"},
             {"stdin": "", "expected_stdout": "fine"}]
    assert verdicts(judge(client, code, cases, memory_mb=128)) == ["memory_limit", "passed"]


def test_stop_on_first_failure(client: httpx.Client) -> None:
    code = ("import sys, time\nn = int(input())\n"
            "if n == 3: time.sleep(30)\nprint(n * 2)")
    cases = [{"stdin": "1", "expected_stdout": "2"}, {"stdin": "2", "expected_stdout": "5"},
             {"stdin": "3", "expected_stdout": "6"}, {"stdin": "4", "expected_stdout": "8"}]
    stopped = judge(client, code, cases, stop_on_first_failure=True, timeout=2)
    assert verdicts(stopped) == ["passed", "wrong_answer", "skipped", "skipped"]
    assert stopped["cases"][2]["result"] is None
    assert (stopped["passed"], stopped["total"]) == (1, 4)
    every = judge(client, code, cases, timeout=2)
    assert verdicts(every) == ["passed", "wrong_answer", "timeout", "passed"]


def test_stop_on_first_failure_all_pass(client: httpx.Client) -> None:
    cases = [{"assertion": f"assert add({i}, 1) == {i + 1}"} for i in range(30)]
    result = judge(client, ADD, cases, stop_on_first_failure=True)
    assert verdicts(result) == ["passed"] * 30
    assert result["pass_rate"] == 1.0


def test_bad_requests(client: httpx.Client) -> None:
    def refused(body: dict) -> dict:
        response = client.post("/v1/judge", json=body)
        assert response.status_code == 422, response.text
        return response.json()

    assert refused({"code": "print(1)", "cases": []})["error"] == "invalid_request"
    no_check = refused({"code": "print(1)", "cases": [{"expected_stdout": "1"}, {"stdin": "x"}]})
    assert (no_check["error"], no_check["message"]) == (
        "invalid_case", "cases[1]: give expected_stdout, assertion, or both")
    limit = refused({"code": "print(1)", "cases": [{"expected_stdout": "1"}], "timeout": 10_000})
    assert limit["error"] == "limit_exceeded"
    assert limit["details"][0]["loc"] == ["body", "cases", 0]
    assert refused({"code": "1", "cases": [{"expected_stdout": "1"}],
                    "compare": "fuzzy"})["error"] == "invalid_request"
    many = refused({"code": "1", "cases": [{"expected_stdout": "1"}] * 10_001})
    assert many["error"] == "too_many_cases"
    # 1 MB of program, queued once per case: 300 cases would be 300 MB
    huge = refused({"code": "#" * 1_000_000, "cases": [{"expected_stdout": "1"}] * 300})
    assert huge["error"] == "judge_too_large"


def test_full_queue(redis_url: str) -> None:
    with full_queue(redis_url) as client:
        for stop in (False, True):
            response = client.post("/v1/judge", json={
                "code": ADD, "stop_on_first_failure": stop,
                "cases": [{"assertion": "assert add(1, 1) == 2"}] * 3})
            assert response.status_code == 429
            assert response.json()["error"] == "queue_full"
            assert "retry-after" in response.headers
