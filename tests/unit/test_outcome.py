"""From what the runner saw to the outcome a trainer rewards on."""

import pytest

from service.models import Outcome, signal_name
from service.worker.outcome import ABNORMAL, classify

BASE = {"timed_out": False, "oom_killed": False, "memory_limit_hit": False,
        "output_limited": False, "signal": None, "exit_code": 0, "stderr": ""}


@pytest.mark.parametrize(("changes", "outcome"), [
    ({}, Outcome.OK),
    ({"exit_code": 3}, Outcome.ERROR),
    ({"exit_code": 1, "stderr": "Traceback ...\nMemoryError\n"}, Outcome.MEMORY_LIMIT),
    ({"exit_code": 1, "stderr": "MemoryError said earlier\nValueError: not memory\n"},
     Outcome.ERROR),
    ({"timed_out": True, "signal": 9, "exit_code": None}, Outcome.TIMEOUT),
    ({"timed_out": True, "memory_limit_hit": True, "signal": 9, "exit_code": None},
     Outcome.MEMORY_LIMIT),
    ({"oom_killed": True, "signal": 9, "exit_code": None}, Outcome.MEMORY_LIMIT),
    ({"output_limited": True, "signal": 9, "exit_code": None}, Outcome.OUTPUT_LIMIT),
    ({"signal": 11, "exit_code": None}, Outcome.KILLED),
    ({"signal": 24, "exit_code": None}, Outcome.TIMEOUT),  # SIGXCPU: the CPU-time backstop
    ({"signal": 25, "exit_code": None}, Outcome.ERROR),  # SIGXFSZ: a file too large
])
def test_classify(changes: dict, outcome: Outcome) -> None:
    assert classify({**BASE, **changes})[0] is outcome


def test_normal_ends_and_timeouts_keep_the_container() -> None:
    assert not {Outcome.OK, Outcome.ERROR, Outcome.TIMEOUT} & ABNORMAL
    assert {Outcome.MEMORY_LIMIT, Outcome.OUTPUT_LIMIT, Outcome.KILLED} <= ABNORMAL


@pytest.mark.parametrize(("limit", "words"), [
    (None, "time limit reached (timeout)"), ("timeout", "time limit reached (timeout)"),
    ("wall_limit", "wall-clock limit reached"), ("cpu_timeout", "CPU time limit reached"),
])
def test_a_timeout_says_which_limit_ended_it(limit: str | None, words: str) -> None:
    report = {**BASE, "timed_out": True, "time_limit": limit, "signal": 9, "exit_code": None}
    outcome, message = classify(report)
    assert outcome is Outcome.TIMEOUT
    assert message is not None and message.startswith(words)


@pytest.mark.parametrize(("number", "name"), [(9, "SIGKILL"), (34, "SIGRTMIN"),
                                              (40, "SIGRTMIN+6"), (64, "SIGRTMAX")])
def test_every_signal_has_a_name(number: int, name: str) -> None:
    assert signal_name(number) == name
    assert classify({**BASE, "signal": number, "exit_code": None}) == (
        Outcome.KILLED, f"killed by {name}")
