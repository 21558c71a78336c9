"""The runner's time limits (sandbox_runner.clock): which one a run reaches, from its counters."""

from types import ModuleType

import pytest

from tests.support import runner_module

S = 1_000_000_000  # ns


@pytest.fixture(scope="module")
def clock() -> ModuleType:
    return runner_module("clock")


class Counters:
    """The cgroup's CPU time and the main process's schedstat, set by the test."""

    def __init__(self, cpus: float = 1.0):
        self.cpus = cpus
        self.cgroup_ns = 0
        self.sched = (0, 0)

    def read_ns(self) -> int:
        return self.cgroup_ns


def start(clock: ModuleType, monkeypatch: pytest.MonkeyPatch, counters: Counters,
          **req: float) -> object:
    monkeypatch.setattr(clock, "schedstat", lambda pid: counters.sched)
    monkeypatch.setattr(clock.time, "monotonic", lambda: 100.0)
    return clock.ExecutionClock({"timeout_s": 3, **req}, 1, counters)


def test_waits_for_a_cpu_are_not_charged(clock: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    counters = Counters()
    run = start(clock, monkeypatch, counters, wall_limit_s=13)
    counters.cgroup_ns, counters.sched = 1 * S, (1 * S, 7 * S)  # 8 s: 1 s on a CPU, 7 waiting
    assert run.reached(108.0) is None
    assert run.run_s(108.0) == pytest.approx(1.0)
    counters.sched = (1 * S, 10 * S)
    assert run.reached(113.0) == clock.WALL_LIMIT


def test_a_sleeper_is_charged_the_wall_clock(clock: ModuleType,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    counters = Counters()
    run = start(clock, monkeypatch, counters, wall_limit_s=13)
    assert run.reached(102.9) is None
    assert run.next_check(102.9) == pytest.approx(103.0)
    assert run.reached(103.0) == clock.TIMEOUT


def test_its_own_processes_keeping_it_waiting_are_charged(
        clock: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork bomb's main process waits for its own children: the container's CPU time over its
    quota counts then."""
    counters = Counters(cpus=1.0)
    run = start(clock, monkeypatch, counters, wall_limit_s=13)
    counters.cgroup_ns, counters.sched = 3 * S, (0, 3 * S)
    assert run.reached(103.0) == clock.TIMEOUT


def test_cpu_timeout(clock: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    counters = Counters(cpus=2.0)
    run = start(clock, monkeypatch, counters, timeout_s=30, cpu_timeout_s=1)
    assert run.next_check(100.0) == pytest.approx(100.5)  # two CPUs: 1 s of CPU in 0.5 s
    counters.cgroup_ns = S
    assert run.reached(100.6) == clock.CPU_TIMEOUT
    assert run.usage()["cpu_ms"] == 1000


def test_without_an_allowance_the_timeout_is_wall_clock(
        clock: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    counters = Counters()
    run = start(clock, monkeypatch, counters)
    counters.sched = (0, 3 * S)
    assert run.reached(103.0) == clock.TIMEOUT
