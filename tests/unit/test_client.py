"""The client's retry, chunking, concurrency and progress rules, against a scripted HTTP transport.

The client against the real service is in tests/integration/test_client.py.
"""

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest
from sandbox_client import (
    AsyncSandboxClient,
    JudgeRequest,
    Outcome,
    RetryPolicy,
    RunRequest,
    SandboxClient,
    SandboxHTTPError,
    Verdict,
    parse_retry_after,
)

FAST = RetryPolicy(max_retries=3, backoff_s=0.001, max_backoff_s=0.002)


def run_json(code: str, outcome: str = "ok") -> dict:
    return {"id": "x", "outcome": outcome, "exit_code": 0 if outcome == "ok" else None,
            "signal": None, "stdout": f"out of {code}", "stderr": "",
            "timing": {"queue_ms": 0, "run_ms": 1, "total_ms": 1},
            "message": "no container" if outcome == "sandbox_error" else None}


def judge_json(verdict: str) -> dict:
    return {"passed": int(verdict == "passed"), "total": 1, "pass_rate": float(verdict == "passed"),
            "cases": [{"index": 0, "verdict": verdict, "message": None, "result": None}]}


class Script:
    """Answers requests in turn from a list of (status, body, headers); records what came."""

    def __init__(self, *answers: tuple[int, dict, dict[str, str]]):
        self.answers = list(answers)
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url.path, orjson.loads(request.content or b"null")))
        status, body, headers = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx.Response(status, json=body, headers=headers)


def client(handler: Callable[[httpx.Request], httpx.Response], **options) -> SandboxClient:
    return SandboxClient("http://sandbox.test", transport=httpx.MockTransport(handler),
                         retry=options.pop("retry", FAST), **options)


def aclient(handler: Callable[[httpx.Request], httpx.Response], **options) -> AsyncSandboxClient:
    return AsyncSandboxClient("http://sandbox.test", transport=httpx.MockTransport(handler),
                              retry=options.pop("retry", FAST), **options)


async def call(client_kind: str, handler: Callable[[httpx.Request], httpx.Response], method: str,
               *args, **options):
    """`method(*args, **options)` of the sync or the async client, over the same handler."""
    if client_kind == "sync":
        with client(handler) as sandbox:
            return getattr(sandbox, method)(*args, **options)
    async with aclient(handler) as sandbox:
        return await getattr(sandbox, method)(*args, **options)


def codes_of(request: httpx.Request) -> list[str]:
    """The codes of a /v1/batch request, in order."""
    return [item["code"] for item in orjson.loads(request.content)["items"]]


FULL = (429, {"error": "queue_full", "message": "full"}, {"Retry-After": "0"})
OK = (200, run_json("print(1)"), {})


# --- the retry policy ---------------------------------------------------------------------------

def test_delay_is_never_less_than_retry_after() -> None:
    policy = RetryPolicy(backoff_s=0.1, max_backoff_s=1)
    assert all(policy.delay(0, "3") >= 3 for _ in range(50))
    assert all(policy.delay(5, "3") >= 3 for _ in range(50))


def test_delay_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_s=1, max_backoff_s=8)
    assert all(0.5 <= policy.delay(0) <= 1 for _ in range(50))
    assert all(2 <= policy.delay(2) <= 4 for _ in range(50))
    assert all(4 <= policy.delay(10) <= 8 for _ in range(50))


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(None) == 0
    assert parse_retry_after("soon") == 0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse_retry_after(later) <= 30


# --- HTTP statuses --------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 503, 504])
def test_retries_busy_statuses(status: int) -> None:
    script = Script((status, {"error": "busy", "message": "later"}, {"Retry-After": "0"}),
                    (status, {"error": "busy", "message": "later"}, {}), OK)
    with client(script) as sandbox:
        result = sandbox.run("print(1)")
    assert result.outcome is Outcome.OK
    assert len(script.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 413, 422, 500])
def test_does_not_retry_other_statuses(status: int) -> None:
    script = Script((status, {"error": "limit_exceeded", "message": "too long"}, {}))
    with client(script) as sandbox, pytest.raises(SandboxHTTPError) as caught:
        sandbox.run("print(1)", timeout=10_000)
    assert (caught.value.status, caught.value.error) == (status, "limit_exceeded")
    assert len(script.requests) == 1


def test_gives_up_after_max_retries() -> None:
    script = Script(FULL)
    with client(script) as sandbox, pytest.raises(SandboxHTTPError) as caught:
        sandbox.run("print(1)")
    assert caught.value.status == 429
    assert len(script.requests) == FAST.max_retries + 1


class Dropping:
    """Fails the first `drops` requests with `error`, then answers OK; counts what came."""

    def __init__(self, error: type[httpx.TransportError], drops: int):
        self.error = error
        self.drops = drops
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests <= self.drops:
            raise self.error("dropped", request=request)
        status, body, _ = OK
        return httpx.Response(status, json=body)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadError,
                                   httpx.RemoteProtocolError, httpx.WriteError])
def test_dropped_connections_are_retried(error: type[httpx.TransportError]) -> None:
    dropping = Dropping(error, drops=2)
    with client(dropping) as sandbox:
        assert sandbox.run("print(1)").outcome is Outcome.OK
    assert dropping.requests == 3


def test_dropped_connections_raise_when_retries_run_out() -> None:
    dropping = Dropping(httpx.ConnectError, drops=100)
    with client(dropping) as sandbox, pytest.raises(httpx.ConnectError):
        sandbox.run("print(1)")
    assert dropping.requests == FAST.max_retries + 1


def test_a_timeout_is_not_retried() -> None:
    dropping = Dropping(httpx.ReadTimeout, drops=1)
    with client(dropping) as sandbox, pytest.raises(httpx.ReadTimeout):
        sandbox.run("print(1)")
    assert dropping.requests == 1


async def test_async_dropped_connections_are_retried() -> None:
    dropping = Dropping(httpx.RemoteProtocolError, drops=2)
    async with aclient(dropping) as sandbox:
        assert (await sandbox.run("print(1)")).outcome is Outcome.OK
    assert dropping.requests == 3


# --- outcome sandbox_error ------------------------------------------------------------------------

def test_run_retries_sandbox_error() -> None:
    script = Script((200, run_json("a", "sandbox_error"), {}), (200, run_json("a"), {}))
    with client(script) as sandbox:
        assert sandbox.run("a").outcome is Outcome.OK
    assert [path for path, _ in script.requests] == ["/v1/run", "/v1/run"]


def test_code_failures_are_not_retried() -> None:
    script = Script((200, run_json("a", "error"), {}))
    with client(script) as sandbox:
        assert sandbox.run("a").outcome is Outcome.ERROR
    assert len(script.requests) == 1


def test_sandbox_error_returned_when_retries_run_out() -> None:
    script = Script((200, run_json("a", "sandbox_error"), {}))
    with client(script) as sandbox:
        assert sandbox.run("a").outcome is Outcome.SANDBOX_ERROR
    assert len(script.requests) == FAST.max_retries + 1


def ndjson(results: list[dict]) -> httpx.Response:
    """A streamed batch's answer, the lines in the order given."""
    lines = b"".join(orjson.dumps({"index": i, "result": r}) + b"\n" for i, r in results)
    return httpx.Response(200, content=lines, headers={"content-type": "application/x-ndjson"})


def batch_server(fail_first: set[str]) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    """Answers /v1/batch streamed, last item first; the codes in fail_first come back
    sandbox_error the first time."""
    sent: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.params["stream"] == "true"
        codes = codes_of(request)
        sent.append(codes)
        results = []
        for index, code in enumerate(codes):
            failing = code in fail_first
            fail_first.discard(code)
            results.append((index, run_json(code, "sandbox_error" if failing else "ok")))
        return ndjson(results[::-1])

    return handle, sent


def test_batch_resends_only_failed_items() -> None:
    handle, sent = batch_server({"b", "d"})
    with client(handle) as sandbox:
        results = sandbox.batch(["a", "b", "c", "d"])
    assert [r.stdout for r in results] == ["out of a", "out of b", "out of c", "out of d"]
    assert all(r.outcome is Outcome.OK for r in results)
    assert sent == [["a", "b", "c", "d"], ["b", "d"]]


def test_batch_chunks_keep_order() -> None:
    handle, sent = batch_server(set())
    codes = [f"print({i})" for i in range(7)]
    with client(handle, batch_size=3, max_concurrency=2) as sandbox:
        results = sandbox.batch(codes, timeout=3)
    assert [r.stdout for r in results] == [f"out of {c}" for c in codes]
    assert sorted(len(part) for part in sent) == [1, 3, 3]


def test_items_take_shared_fields() -> None:
    handle, _ = batch_server(set())
    seen: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        return handle(request)

    with client(record) as sandbox:
        sandbox.batch(["a", RunRequest(code="b", stdin="x")], memory_mb=64)
        sandbox.batch(["c"], priority="interactive")
    assert seen[0] == {"items": [{"code": "a", "memory_mb": 64},
                                 {"code": "b", "stdin": "x", "memory_mb": 64}]}
    assert seen[1] == {"items": [{"code": "c"}], "priority": "interactive"}


def test_judge_retried_when_a_case_met_our_failure() -> None:
    script = Script((200, judge_json("sandbox_error"), {}), (200, judge_json("wrong_answer"), {}))
    with client(script) as sandbox:
        result = sandbox.judge("print(1)", [{"stdin": "", "expected_stdout": "2"}])
    assert result.cases[0].verdict == "wrong_answer"
    assert len(script.requests) == 2
    assert script.requests[0][1] == {"code": "print(1)",
                                     "cases": [{"stdin": "", "expected_stdout": "2"}]}


def test_api_key_is_sent() -> None:
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=run_json("a"))

    with SandboxClient("http://sandbox.test", "s3cret", transport=httpx.MockTransport(handle)) as c:
        c.run("a")
    assert seen == ["Bearer s3cret"]


# --- bounded concurrency --------------------------------------------------------------------------

class Gauge:
    def __init__(self):
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def test_sync_concurrency_is_bounded() -> None:
    gauge = Gauge()

    def handle(request: httpx.Request) -> httpx.Response:
        gauge.enter()
        time.sleep(0.02)
        gauge.leave()
        return httpx.Response(200, json=run_json("a"))

    with client(handle, max_concurrency=3) as sandbox:
        threads = [threading.Thread(target=sandbox.run, args=("a",)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert 1 <= gauge.peak <= 3


async def test_async_concurrency_is_bounded_and_retries() -> None:
    gauge = Gauge()
    busy_once: set[str] = {"c3", "c7"}

    async def handle(request: httpx.Request) -> httpx.Response:
        gauge.enter()
        await asyncio.sleep(0.02)
        gauge.leave()
        code = orjson.loads(request.content)["code"]
        if code in busy_once:
            busy_once.discard(code)
            return httpx.Response(503, json={"error": "queue_unavailable", "message": "down"},
                                  headers={"Retry-After": "0"})
        return httpx.Response(200, json=run_json(code))

    async with aclient(handle, max_concurrency=4) as sandbox:
        results = await asyncio.gather(*(sandbox.run(f"c{i}") for i in range(20)))
    assert [r.stdout for r in results] == [f"out of c{i}" for i in range(20)]
    assert 1 <= gauge.peak <= 4
    assert not busy_once


async def test_async_batch_and_judge_retry_our_failures() -> None:
    handle, sent = batch_server({"b"})
    judged = Script((200, judge_json("sandbox_error"), {}), (200, judge_json("passed"), {}))

    def route(request: httpx.Request) -> httpx.Response:
        return handle(request) if request.url.path == "/v1/batch" else judged(request)

    async with aclient(route, batch_size=2) as sandbox:
        results = await sandbox.batch(["a", "b", "c"])
        verdict = await sandbox.judge("x", [{"assertion": "assert True"}])
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert sorted(sent) == [["a", "b"], ["b"], ["c"]]
    assert verdict.pass_rate == 1.0
    assert len(judged.requests) == 2


# --- progress -------------------------------------------------------------------------------------

def test_batch_progress_counts_each_run_once() -> None:
    handle, sent = batch_server({"c2", "c5"})
    reports: list[tuple[int, int]] = []
    with client(handle, batch_size=3, max_concurrency=2) as sandbox:
        results = sandbox.batch([f"c{i}" for i in range(8)],
                                progress=lambda done, total: reports.append((done, total)))
    assert all(r.outcome is Outcome.OK for r in results)
    assert reports == [(done, 8) for done in range(1, 9)]
    assert sorted(map(len, sent)) == [1, 1, 2, 3, 3]  # c2 and c5 sent again, alone


def test_progress_counts_our_failures_when_retries_run_out() -> None:
    def b_always_fails(request: httpx.Request) -> httpx.Response:
        codes = codes_of(request)
        return ndjson([(i, run_json(c, "sandbox_error" if c == "b" else "ok"))
                       for i, c in enumerate(codes)])

    reports: list[tuple[int, int]] = []
    with client(b_always_fails) as sandbox:
        results = sandbox.batch(["a", "b", "c"], progress=lambda *r: reports.append(r))
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.SANDBOX_ERROR, Outcome.OK]
    assert reports == [(1, 3), (2, 3), (3, 3)]


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The first `lines` lines of an answer, then the connection drops."""

    def __init__(self, lines: list[bytes]):
        self.lines = lines

    def __iter__(self):
        yield from self.lines
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self):
        for line in self.lines:
            yield line
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_a_stream_cut_midway_resends_only_the_unanswered_runs(client_kind: str) -> None:
    sent: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        codes = codes_of(request)
        sent.append(codes)
        lines = [orjson.dumps({"index": i, "result": run_json(c)}) + b"\n"
                 for i, c in enumerate(codes)]
        if len(sent) == 1:
            return httpx.Response(200, stream=CutStream([lines[2], lines[0]]))
        return httpx.Response(200, content=b"".join(lines))

    reports: list[tuple[int, int]] = []
    results = await call(client_kind, handle, "batch", ["a", "b", "c", "d"],
                         progress=lambda *r: reports.append(r))
    assert [r.stdout for r in results] == ["out of a", "out of b", "out of c", "out of d"]
    assert sent == [["a", "b", "c", "d"], ["b", "d"]]
    assert reports == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_progress_bar_with_tqdm(capsys: pytest.CaptureFixture[str]) -> None:
    handle, _ = batch_server(set())
    with client(handle, batch_size=4) as sandbox:
        sandbox.batch([f"c{i}" for i in range(10)], progress=True)
    assert "10/10" in capsys.readouterr().err


def judge_server(verdicts: dict[int, str]) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    """Answers /v1/judge: case i (numbered by its stdin) gets verdicts.get(i, "passed"), cases
    after a failure skipped when asked to stop there."""
    sent: list[list[int]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        payload = orjson.loads(request.content)
        numbers = [int(case["stdin"]) for case in payload["cases"]]
        sent.append(numbers)
        cases, failed = [], None
        for index, number in enumerate(numbers):
            verdict = "skipped" if failed is not None else verdicts.get(number, "passed")
            if verdict != "passed" and failed is None and payload.get("stop_on_first_failure"):
                failed = index
            cases.append({"index": index, "verdict": verdict, "message": None, "result": None})
        passed = sum(c["verdict"] == "passed" for c in cases)
        return httpx.Response(200, json={"passed": passed, "total": len(cases),
                                         "pass_rate": passed / len(cases), "cases": cases})

    return handle, sent


def test_judge_progress_in_parts() -> None:
    handle, sent = judge_server({13: "wrong_answer"})
    reports: list[tuple[int, int]] = []
    cases = [{"stdin": str(i), "expected_stdout": ""} for i in range(25)]
    with client(handle) as sandbox:
        result = sandbox.judge("x", cases, progress=lambda *r: reports.append(r))
    assert sorted(sent) == [list(range(i, min(i + 3, 25))) for i in range(0, 25, 3)]
    assert [c.index for c in result.cases] == list(range(25))
    assert [c.verdict for c in result.cases] == [Verdict.PASSED] * 13 + [Verdict.WRONG_ANSWER] + \
        [Verdict.PASSED] * 11
    assert (result.passed, result.total, result.pass_rate) == (24, 25, 24 / 25)
    assert reports[-1] == (25, 25) and len(reports) == 9


def test_judge_in_parts_stops_at_the_first_failure_in_order() -> None:
    handle, _ = judge_server({4: "runtime_error", 13: "wrong_answer", 20: "timeout"})
    cases = [{"stdin": str(i), "expected_stdout": ""} for i in range(25)]
    with client(handle) as sandbox:
        result = sandbox.judge("x", cases, stop_on_first_failure=True, progress=lambda *_: None)
    assert [c.verdict for c in result.cases[:6]] == [Verdict.PASSED] * 4 + [
        Verdict.RUNTIME_ERROR, Verdict.SKIPPED]
    assert {c.verdict for c in result.cases[5:]} == {Verdict.SKIPPED}
    assert result.cases[24].message == "not judged: case 4 failed first"
    assert (result.passed, result.total) == (4, 25)


def test_judge_without_progress_is_one_request() -> None:
    handle, sent = judge_server({})
    with client(handle) as sandbox:
        sandbox.judge("x", [{"stdin": str(i)} for i in range(25)])
    assert sent == [list(range(25))]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_judge_with_progress_and_one_case_is_one_request(client_kind: str) -> None:
    handle, sent = judge_server({})
    reports: list[tuple[int, int]] = []
    result = await call(client_kind, handle, "judge", "x", [{"stdin": "7"}],
                        progress=lambda *r: reports.append(r))
    assert sent == [[7]]
    assert (result.passed, result.total) == (1, 1)
    assert reports == [(1, 1)]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_judge_with_progress_and_no_cases_gets_the_service_refusal(client_kind: str) -> None:
    refused = Script((422, {"error": "invalid_request", "message": "cases: at least 1"}, {}))
    reports: list[tuple[int, int]] = []
    with pytest.raises(SandboxHTTPError) as caught:
        await call(client_kind, refused, "judge", "x", [], progress=lambda *r: reports.append(r))
    assert caught.value.status == 422
    assert refused.requests == [("/v1/judge", {"code": "x", "cases": []})]
    assert reports == []


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_a_judge_request_given_takes_the_fields_and_cases(client_kind: str) -> None:
    script = Script((200, judge_json("passed"), {}))
    request = JudgeRequest(code="x", cases=[{"stdin": "1"}], timeout=2)
    await call(client_kind, script, "judge", request, memory_mb=64)
    await call(client_kind, script, "judge", request, [{"stdin": "2"}], timeout=5)
    await call(client_kind, script, "judge", request)
    assert [body for _, body in script.requests] == [
        {"code": "x", "cases": [{"stdin": "1"}], "timeout": 2, "memory_mb": 64},
        {"code": "x", "cases": [{"stdin": "2"}], "timeout": 5},
        {"code": "x", "cases": [{"stdin": "1"}], "timeout": 2}]


async def test_async_batch_and_judge_progress() -> None:
    batch_handle, _ = batch_server({"c1"})
    judge_handle, _ = judge_server({})

    def route(request: httpx.Request) -> httpx.Response:
        return batch_handle(request) if request.url.path == "/v1/batch" else judge_handle(request)

    runs: list[tuple[int, int]] = []
    cases: list[tuple[int, int]] = []
    async with aclient(route, batch_size=2) as sandbox:
        await sandbox.batch([f"c{i}" for i in range(5)], progress=lambda *r: runs.append(r))
        await sandbox.judge("x", [{"stdin": str(i)} for i in range(4)],
                            progress=lambda *r: cases.append(r))
    assert runs == [(done, 5) for done in range(1, 6)]
    assert cases == [(done, 4) for done in range(1, 5)]


# --- jobs -----------------------------------------------------------------------------------------

def test_submit_job_and_cancel() -> None:
    seen: list[tuple[str, str]] = []
    done = {"id": "j1", "state": "done", "result": run_json("a", "cancelled")}

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.method == "POST":
            return httpx.Response(202, json={"id": "j1", "state": "queued"})
        if request.method == "GET":
            return httpx.Response(200, json={"id": "j1", "state": "running", "result": None})
        return httpx.Response(200, json={**done, "cancelled": True})

    with client(handle) as sandbox:
        job_id = sandbox.submit("a", priority="bulk")
        assert sandbox.job(job_id).state == "running"
        cancelled = sandbox.cancel(job_id)
    assert (cancelled.cancelled, cancelled.result.outcome) == (True, Outcome.CANCELLED)
    assert seen == [("POST", "/v1/jobs"), ("GET", "/v1/jobs/j1"), ("DELETE", "/v1/jobs/j1")]


def test_cancel_of_an_unknown_job_raises() -> None:
    script = Script((404, {"error": "not_found", "message": "no job 'x'"}, {}))
    with client(script) as sandbox, pytest.raises(SandboxHTTPError) as caught:
        sandbox.cancel("x")
    assert (caught.value.status, caught.value.error) == (404, "not_found")


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_answers_that_end_short_every_time_raise(client_kind: str) -> None:
    sent: list[int] = []

    def short(request: httpx.Request) -> httpx.Response:
        codes = codes_of(request)
        sent.append(len(codes))
        return ndjson([(0, run_json(codes[0]))]) if codes[0] == "a" else ndjson([])

    with pytest.raises(httpx.RemoteProtocolError):
        await call(client_kind, short, "batch", ["a", "b"])
    assert sent == [2] + [1] * FAST.max_retries
