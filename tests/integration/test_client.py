"""sandbox_client against the running service: typed results, order, judging, progress, jobs,
refusals; and its wire shapes read real answers as the server's own models do."""

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
import sandbox_client.models as client_models
from sandbox_client import (
    AsyncSandboxClient,
    Outcome,
    RetryPolicy,
    RunRequest,
    SandboxClient,
    SandboxHTTPError,
    Verdict,
)

import service.models as server_models
from tests.support import Service, full_queue, wait_done


@pytest.fixture
def sandbox(service: Service):
    with SandboxClient(service.base_url, max_concurrency=4, batch_size=7) as client:
        yield client


def test_run(sandbox: SandboxClient) -> None:
    result = sandbox.run("print(input() * 2)", stdin="ab")
    assert (result.outcome, result.stdout, result.exit_code) == (Outcome.OK, "abab\n", 0)
    failed = sandbox.run(RunRequest(code="raise KeyError('k')"))
    assert failed.outcome is Outcome.ERROR
    assert "KeyError: 'k'" in failed.stderr


def test_batch_in_chunks_keeps_order(sandbox: SandboxClient) -> None:
    items = [f"print({i} ** 2)" for i in range(40)] + [RunRequest(code="exit(5)")]
    results = sandbox.batch(items, timeout=5)
    assert [r.stdout for r in results[:40]] == [f"{i ** 2}\n" for i in range(40)]
    assert (results[40].outcome, results[40].exit_code) == (Outcome.ERROR, 5)
    assert len({r.id for r in results}) == 41


def test_judge(sandbox: SandboxClient) -> None:
    result = sandbox.judge("def sq(x):\n    return x * x",
                           [{"assertion": "assert sq(3) == 9"}, {"assertion": "assert sq(2) == 5"}])
    assert [c.verdict for c in result.cases] == [Verdict.PASSED, Verdict.WRONG_ANSWER]
    assert result.pass_rate == 0.5


def test_refusal_raises(sandbox: SandboxClient) -> None:
    with pytest.raises(SandboxHTTPError) as caught:
        sandbox.run("print(1)", timeout=100_000)
    assert (caught.value.status, caught.value.error) == (422, "limit_exceeded")


def code_reward(client: SandboxClient, completion: str, tests: list[dict]) -> float:
    """The README's reward function: the share of test cases the completion passes."""
    return client.judge(completion, tests, timeout=5, compare="numeric").pass_rate


def test_reward_function(sandbox: SandboxClient) -> None:
    tests = [{"stdin": "3 4", "expected_stdout": "7"}, {"stdin": "10 -2", "expected_stdout": "8"}]
    assert code_reward(sandbox, "a, b = map(int, input().split())\nprint(a + b)", tests) == 1.0
    assert code_reward(sandbox, "print(7)", tests) == 0.5
    assert code_reward(sandbox, "import sys; sys.exit(1)", tests) == 0.0


async def test_async_client(service: Service) -> None:
    async with AsyncSandboxClient(service.base_url, max_concurrency=8, batch_size=10) as sandbox:
        runs = await asyncio.gather(*(sandbox.run(f"print({i})") for i in range(16)))
        assert [r.stdout for r in runs] == [f"{i}\n" for i in range(16)]
        batch = await sandbox.batch([f"print('b{i}')" for i in range(25)])
        assert [r.stdout for r in batch] == [f"b{i}\n" for i in range(25)]
        judged = await sandbox.judge("print(int(input()) + 1)",
                                     [{"stdin": "1", "expected_stdout": "2"}])
        assert judged.cases[0].verdict is Verdict.PASSED


def test_runs_go_on_through_an_api_restart(service: Service) -> None:
    """Connections the stopping API closes, and refused while it is down, are sent again."""
    stop = threading.Event()
    answered: list[tuple[int, str]] = []
    numbers = itertools.count()

    def keep_running(sandbox: SandboxClient) -> None:
        while not stop.is_set():
            n = next(numbers)
            answered.append((n, sandbox.run(f"print({n})").stdout))

    def until_answered(count: int) -> None:
        while len(answered) < count and not any(f.done() for f in senders):
            stop.wait(0.05)

    with SandboxClient(service.base_url, max_concurrency=4) as sandbox, \
            ThreadPoolExecutor(4) as pool:
        senders = [pool.submit(keep_running, sandbox) for _ in range(4)]
        try:
            until_answered(20)
            service.restart_api()
            until_answered(len(answered) + 20)
        finally:
            stop.set()
        for sender in senders:
            sender.result()  # raises what a sender met
    assert len(answered) >= 40
    assert all(stdout == f"{n}\n" for n, stdout in answered)


def test_full_queue_is_retried_then_raised(redis_url: str) -> None:
    with full_queue(redis_url) as http:
        policy = RetryPolicy(max_retries=2, backoff_s=0.01, max_backoff_s=0.01)
        with SandboxClient(str(http.base_url), retry=policy) as sandbox, \
                pytest.raises(SandboxHTTPError) as caught:
            sandbox.batch(["print(1)"])
        assert (caught.value.status, caught.value.error) == (429, "queue_full")


def test_batch_progress(sandbox: SandboxClient) -> None:
    reports: list[tuple[int, int]] = []
    results = sandbox.batch([f"print({i})" for i in range(20)],
                            progress=lambda done, total: reports.append((done, total)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    assert reports == [(done, 20) for done in range(1, 21)]


def test_judge_progress_keeps_the_judging_whole(sandbox: SandboxClient) -> None:
    reports: list[tuple[int, int]] = []
    cases = [{"stdin": str(i), "expected_stdout": str(i)} for i in range(12)]
    result = sandbox.judge("n = int(input())\nprint(-1 if n == 5 else n)", cases,
                           stop_on_first_failure=True, progress=lambda *r: reports.append(r))
    assert [c.index for c in result.cases] == list(range(12))
    assert [c.verdict for c in result.cases] == [Verdict.PASSED] * 5 + [Verdict.WRONG_ANSWER] + \
        [Verdict.SKIPPED] * 6
    assert result.cases[11].message == "not judged: case 5 failed first"
    assert (result.passed, result.total) == (5, 12)
    assert reports[-1] == (12, 12)
    assert len(reports) > 1


def test_priority(service: Service, sandbox: SandboxClient) -> None:
    assert sandbox.run("print(1)", priority="bulk").stdout == "1\n"
    assert [r.stdout for r in sandbox.batch(["print(2)"], priority="interactive")] == ["2\n"]
    with SandboxClient(service.base_url) as whole, pytest.raises(SandboxHTTPError) as caught:
        whole.batch(["print(3)"] * 17, priority="interactive")  # one chunk, past the limit of 16
    assert (caught.value.status, caught.value.error) == (422, "priority_not_allowed")


def test_submit_and_cancel(sandbox: SandboxClient) -> None:
    job_id = sandbox.submit("import time; print('started', flush=True); time.sleep(60)")
    cancelled = sandbox.cancel(job_id)
    assert (cancelled.id, cancelled.cancelled, cancelled.state) == (job_id, True, "done")
    assert cancelled.result is not None and cancelled.result.outcome is Outcome.CANCELLED
    assert sandbox.job(job_id).result.outcome is Outcome.CANCELLED
    assert sandbox.cancel(job_id).cancelled is False  # done already: its result stands
    with pytest.raises(SandboxHTTPError) as caught:
        sandbox.cancel("no-such-job")
    assert caught.value.status == 404


def real_answers(client: httpx.Client) -> list[tuple[str, bytes]]:
    """(model name, raw answer) from the service, of every shape the client reads."""
    run = {"code": "open('a.txt', 'w').write('x'); import sys; print(1); sys.exit(3)",
           "return_files": ["*.txt"], "stdin": "in"}
    answers = [("RunResult", client.post("/v1/run", json=run).content),
               ("RunResult", client.post("/v1/run", json={"code": "while True: pass",
                                                          "timeout": 0.5}).content)]
    streamed = client.post("/v1/batch?stream=true", json={"items": [{"code": "print(2)"},
                                                                     {"code": "1/0"}]})
    answers += [("BatchLine", line) for line in streamed.content.splitlines()]
    answers.append(("JudgeResult", client.post("/v1/judge", json={
        "code": "print(input())", "stop_on_first_failure": True,
        "cases": [{"stdin": "1", "expected_stdout": "1"}, {"stdin": "2", "expected_stdout": "3"},
                  {"stdin": "4", "expected_stdout": "4"}]}).content))
    queued = client.post("/v1/jobs", json={"code": "print(5)"})
    job_id = queued.json()["id"]
    wait_done(client, job_id)
    answers += [("JobAccepted", queued.content), ("JobStatus", client.get(f"/v1/jobs/{job_id}").content)]
    slow = client.post("/v1/jobs", json={"code": "import time; time.sleep(60)"}).json()["id"]
    answers += [("JobStatus", client.get(f"/v1/jobs/{slow}").content),
                ("JobCancel", client.delete(f"/v1/jobs/{slow}").content)]
    return answers


def test_wire_shapes_agree_with_the_server_on_real_answers(client: httpx.Client) -> None:
    for name, raw in real_answers(client):
        ours = getattr(client_models, name).model_validate_json(raw).model_dump(mode="json")
        theirs = getattr(server_models, name).model_validate_json(raw).model_dump(mode="json")
        assert ours == theirs, (name, raw)
        assert set(orjson.loads(raw)) <= set(ours), (name, raw)
