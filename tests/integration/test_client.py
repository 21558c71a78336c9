"""service.client against the running service: typed results, order, judging, refusals."""

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.client import AsyncSandboxClient, RetryPolicy, SandboxClient, SandboxHTTPError
from service.models import Outcome, RunRequest, Verdict
from tests.support import Service, full_queue


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
