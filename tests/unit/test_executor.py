"""The executor against a fake engine and fake runners (tests/unit/fake_engine.py): what each
report of the runner becomes in the result, whether its container serves again, and our own
failures reported as sandbox_error. The same through HTTP, Redis and Docker:
tests/integration/test_run.py and tests/reliability/."""

import orjson
import pytest

from service import wire
from service.jobspec import JobSpec
from service.models import Language, Outcome, RunResult
from service.settings import Settings
from service.worker import executor as executor_module
from service.worker.docker_engine import Owner
from service.worker.executor import Executor
from service.worker.pool import ContainerPool
from service.worker.pools import LanguagePools
from tests.unit.fake_engine import FakeEngine, until

SETTINGS = Settings(pool_size=1)


def job(code: str, **changes: object) -> wire.Job:
    spec = JobSpec(**{"language": Language.PYTHON, "code": code, "stdin_b64": None,
                      "files_b64": {}, "timeout_s": 1.0, "memory_mb": SETTINGS.default_memory_mb,
                      "max_output_bytes": 1 << 16, "max_file_bytes": 1 << 20,
                      "fresh_interpreter": False, **changes})
    return wire.Job("0-1", f"job-{code}", spec.model_dump_json().encode(), "replies",
                    wire.now_ms(), 0.0)


async def started(engine: FakeEngine) -> tuple[Executor, ContainerPool]:
    pool = ContainerPool(engine, SETTINGS, Owner("unit", "w", "h", 1), "sandbox-python")
    pool.start()
    await until(lambda: pool.idle == 1)
    output = None  # no streamed job here: nothing is relayed
    return Executor(LanguagePools(pool, {}, 1), SETTINGS, output), pool  # type: ignore[arg-type]


async def execute(engine: FakeEngine, *jobs: wire.Job) -> list[dict]:
    """Each job's result, run one after the other; the pool closed after."""
    executor, pool = await started(engine)
    results = []
    for each in jobs:
        results.append(orjson.loads((await executor.run(each)).encode()))
        await until(lambda: pool.idle == 1 or engine.failing)
    await pool.close()
    return results


@pytest.mark.parametrize(("code", "outcome", "reused"), [
    ("ok", Outcome.OK, True),
    ("error", Outcome.ERROR, True),
    ("timeout", Outcome.TIMEOUT, True),
    ("cpu_timeout", Outcome.TIMEOUT, True),
    ("memory_error", Outcome.MEMORY_LIMIT, False),
    ("oom", Outcome.MEMORY_LIMIT, False),
    ("output_limit", Outcome.OUTPUT_LIMIT, False),
    ("segfault", Outcome.KILLED, False),
])
async def test_a_report_becomes_its_outcome(code: str, outcome: Outcome, reused: bool) -> None:
    engine = FakeEngine()
    result, after = await execute(engine, job(code), job("ok"))
    RunResult.model_validate(result)
    assert (result["id"], result["outcome"]) == (f"job-{code}", outcome)
    assert after["outcome"] == Outcome.OK
    assert engine.started == (["c0"] if reused else ["c0", "c1"])
    assert len(engine.runners["c0" if reused else "c1"].requests) == (2 if reused else 1)


async def test_the_result_carries_the_report() -> None:
    (result,) = await execute(FakeEngine(), job("timeout"))
    assert result["message"] == "time limit reached (timeout); the process group was killed"
    assert (result["exit_code"], result["signal"]) == (None, 9)
    assert result["timing"]["run_ms"] == 2.0 and result["timing"]["cpu_ms"] == 1.0
    assert result["timing"]["total_ms"] >= result["timing"]["queue_ms"] >= 0


async def test_a_runner_that_goes_away_is_a_sandbox_error() -> None:
    engine = FakeEngine()
    result, after = await execute(engine, job("vanish"), job("ok"))
    assert result["outcome"] == Outcome.SANDBOX_ERROR
    assert result["message"].startswith("sandbox failed: runner closed its stream")
    assert after["outcome"] == Outcome.OK and engine.started == ["c0", "c1"]  # replaced


async def test_an_engine_failure_is_a_sandbox_error_not_the_codes() -> None:
    """The container's memory cannot be set for the job: ours, and the container goes."""
    engine = FakeEngine()
    engine.memory_fails = True
    (result,) = await execute(engine, job("ok", memory_mb=64))
    RunResult.model_validate(result)
    assert result["outcome"] == Outcome.SANDBOX_ERROR
    assert result["message"] == "no sandbox available: cannot update the container"
    assert engine.runners["c0"].requests == [] and engine.started == ["c0", "c1"]


async def test_no_container_in_time_is_a_sandbox_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "LEASE_TIMEOUT_S", 0.2)
    engine = FakeEngine()
    executor, pool = await started(engine)
    engine.failing = True
    engine.kill("c0")
    await until(lambda: pool.idle == 0)
    result = orjson.loads((await executor.run(job("ok"))).encode())
    await pool.close()
    assert result["outcome"] == Outcome.SANDBOX_ERROR
    assert result["message"].startswith("no sandbox available: ")


async def test_an_unreadable_job_is_a_sandbox_error() -> None:
    (result,) = await execute(FakeEngine(), wire.Job("0-1", "bad", b"{}", "replies", wire.now_ms(), 0.0))
    assert (result["id"], result["outcome"]) == ("bad", Outcome.SANDBOX_ERROR)
    assert result["message"].startswith("unreadable job payload")
