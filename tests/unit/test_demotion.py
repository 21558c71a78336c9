"""Demotion of a run that wants the CPU: by its threads' run-and-wait time, or, on a crowded host
where that lags, by a thread ready to run at readings DEMOTE_AFTER_S apart. Its container is a
stand-in here: what the worker reads of a real one is tested in test_cgroups.py, and a real
run's demotion in tests/integration/test_lanes.py."""

import asyncio
from collections.abc import Iterator

from service.worker.cpu_weight import DEMOTE_AFTER_S, Demotion


class Readings:
    """A container whose threads read as the given (run-and-wait ns, ready) in turn, the last
    one for ever after."""

    def __init__(self, *readings: tuple[int, bool]):
        self.readings: Iterator[tuple[int, bool]] = iter(readings)
        self.last = readings[-1]
        self.read = 0

    def runnable(self) -> tuple[int, bool]:
        self.read += 1
        self.last = next(self.readings, self.last)
        return self.last


async def demoted_within(cgroup: Readings, ready: bool, seconds: float) -> bool:
    lowered = asyncio.Event()
    demotion = Demotion(cgroup, 0, ready, lowered.set)  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(lowered.wait(), seconds)
    except TimeoutError:
        return False
    finally:
        demotion.cancel()
    return True


async def test_a_loop_whose_waits_are_not_counted_yet_is_demoted_for_being_ready() -> None:
    crowded = Readings((1_000_000, True))  # 1 ms counted, always ready: a loop among hundreds
    assert await demoted_within(crowded, True, DEMOTE_AFTER_S + 0.2)
    assert crowded.read == 1  # at the first reading: it was ready at the start too


async def test_a_run_that_used_the_time_is_demoted_whatever_its_state() -> None:
    assert await demoted_within(Readings((int(DEMOTE_AFTER_S * 1e9), False)), False,
                                DEMOTE_AFTER_S + 0.2)


async def test_a_sleeper_is_left_alone() -> None:
    sleeper = Readings((1_000_000, False))
    assert not await demoted_within(sleeper, False, 3 * DEMOTE_AFTER_S)
    assert sleeper.read >= 2  # it was looked at again


async def test_readiness_counts_only_while_no_reading_says_otherwise() -> None:
    """Ready at the start, asleep at the next reading, then ready again: its time counts from
    the later readiness, one DEMOTE_AFTER_S on (about 3 DEMOTE_AFTER_S from the start)."""
    assert not await demoted_within(Readings((0, False), (0, True)), True, 2.5 * DEMOTE_AFTER_S)
    assert await demoted_within(Readings((0, False), (0, True)), True, 4 * DEMOTE_AFTER_S)
