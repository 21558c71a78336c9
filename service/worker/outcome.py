"""From what the runner saw to what the caller is told."""

import re
import signal
from typing import Any

from service import runner_protocol as rp
from service.models import Outcome, signal_name

# What the caller is told when a time limit ended the run, by the runner's `time_limit`.
TIME_LIMITS = {
    rp.LIMIT_TIMEOUT: "time limit reached (timeout); the process group was killed",
    rp.LIMIT_WALL: "wall-clock limit reached (timeout plus the allowance for waiting on a busy "
                   "host's CPUs); the process group was killed",
    rp.LIMIT_CPU: "CPU time limit reached (cpu_timeout); the process group was killed",
}

CANCELLED_WHILE_RUNNING = "cancelled while running"

# Outcomes after which a container is destroyed rather than reused. A timeout is not one: the
# runner killed the process group at the limit, and the next child proves the container clean
# (every process of the sandbox uid killed, every scratch file gone) before the runner says
# ready again, or the runner exits and the container is replaced. In a storm of programs that
# loop forever, replacing the container after each would cost a container start per timeout.
ABNORMAL = frozenset({Outcome.MEMORY_LIMIT, Outcome.OUTPUT_LIMIT, Outcome.KILLED})


# The last words of runtimes whose own heap limit (below the container's) refused an allocation.
RUNTIME_OUT_OF_MEMORY = re.compile(
    r'^(?:Exception in thread "[^"]*" java\.lang\.OutOfMemoryError'  # Java
    r"|FATAL ERROR: .*JavaScript heap out of memory)", re.MULTILINE)  # Node.js


def _raised_memory_error(stderr: str) -> bool:
    """Python's last words when an allocation beyond the limit was refused outright, or
    another runtime's."""
    lines = stderr.rstrip().rsplit("\n", 1)
    return lines[-1].startswith("MemoryError") or bool(RUNTIME_OUT_OF_MEMORY.search(stderr))


def classify(report: dict[str, Any]) -> tuple[Outcome, str | None]:
    """The outcome of one execution and, where useful, why."""
    if report.get("cancelled"):
        return Outcome.CANCELLED, CANCELLED_WHILE_RUNNING
    if report["timed_out"]:
        if report.get("memory_limit_hit"):
            return Outcome.MEMORY_LIMIT, ("memory limit reached: the program stalled there "
                                          "until the time limit, then was killed")
        return Outcome.TIMEOUT, TIME_LIMITS[report.get("time_limit") or rp.LIMIT_TIMEOUT]
    if report["oom_killed"]:
        return Outcome.MEMORY_LIMIT, "memory limit reached; killed by the out-of-memory killer"
    if report["output_limited"]:
        return Outcome.OUTPUT_LIMIT, "output cap reached; the output was cut there"
    signum = report["signal"]
    if signum is not None:
        if signum == signal.SIGXCPU:
            return Outcome.TIMEOUT, "CPU time limit reached (SIGXCPU)"
        if signum == signal.SIGXFSZ:
            return Outcome.ERROR, "file size limit reached (SIGXFSZ)"
        return Outcome.KILLED, f"killed by {signal_name(signum)}"
    if report["exit_code"] != 0:
        if _raised_memory_error(report["stderr"]):
            return Outcome.MEMORY_LIMIT, "an allocation failed (MemoryError)"
        return Outcome.ERROR, None
    return Outcome.OK, None
