"""Admission of runs whose timeout forgives the waits for a CPU: a few busy ones at a time.

Such a run (`/v1/run` and the other native routes) is charged only for the time it ran or could
have run, within a wall-clock cap. Sixteen of them needing a second of CPU each, all started at
once on two cores, would each wait fifteen seconds for its turns and reach that cap. So a
worker starts one only while fewer than `slots` of its admitted runs are busy on the CPU; the
others wait in the worker, where waiting is queue time, never charged. Busy is measured, not
guessed: a thread of the run's container is running or ready to run (state R) when sampled,
or its threads spent at least BUSY_CPUS of the last SAMPLE_S so (their /proc/<tid>/schedstat;
the threads are listed in the engine's cgroup, read from the host). Waiting for a CPU counts,
so that a busy run stays busy on a loaded host; sleepers and programs blocked on input hold
no slot.
A run just started counts as busy until its first sample. Where the worker cannot see the
engine's cgroups (a remote engine, a pod), a run counts as busy for its first sample only.

Runs with plain wall-clock timeouts (the compatibility routes, whose peers run every request at
once) are not admitted here: they only wait for a free container.
"""

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from service.worker.cgroups import Cgroup

SAMPLE_S = 0.1
BUSY_CPUS = 0.5  # of a core, running or ready to run


@dataclass
class Ticket:
    """One admitted run: busy until a sample of its container says otherwise."""

    number: int
    urgent: bool
    attached: bool = False  # its request is with its runner: from then on it is sampled
    cgroup: Cgroup | None = None
    runnable_ns: int | None = None
    sampled: float = field(default_factory=time.monotonic)
    busy: bool = True

    def sample(self, now: float) -> None:
        if not self.attached or now - self.sampled < SAMPLE_S:
            return
        if self.cgroup is None or self.runnable_ns is None:
            self.busy = False  # not seen from here: busy for its first sample only
            return
        runnable, ready = self.cgroup.runnable()
        rate = (runnable - self.runnable_ns) / 1e9 / (now - self.sampled)
        self.busy = ready or rate >= BUSY_CPUS
        self.runnable_ns, self.sampled = runnable, now


class CpuAdmission:
    def __init__(self, slots: int):
        self.slots = slots
        self._tickets: dict[int, Ticket] = {}
        self._numbers = itertools.count()
        self._left = asyncio.Event()  # a run ended: its slot may be free
        self._urgent_waiting = 0  # interactive runs waiting: the next free slot is theirs

    def busy(self, urgent_only: bool = False) -> int:
        now = time.monotonic()
        for ticket in self._tickets.values():
            ticket.sample(now)
        return sum(ticket.busy for ticket in self._tickets.values()
                   if ticket.urgent or not urgent_only)

    @contextlib.asynccontextmanager
    async def admitted(self, urgent: bool = False) -> AsyncIterator[Ticket]:
        """Once fewer than `slots` admitted runs are busy; `attach` the run's container. An
        `urgent` run (of the interactive lane) goes before every other waiting one, as it was
        claimed before them: a bulk run enters only while no urgent one waits. And an urgent
        run counts only the urgent ones busy: bulk runs hold a sixteenth of the CPU weight
        (cpu_weight.py) and are not charged for their waits, so it need not wait for them."""
        self._urgent_waiting += urgent
        try:
            while (self.busy(urgent) >= self.slots
                   or (not urgent and self._urgent_waiting)):
                self._left.clear()  # until a run ends, or the next sample
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._left.wait(), SAMPLE_S)
        finally:
            self._urgent_waiting -= urgent
        ticket = Ticket(next(self._numbers), urgent)
        self._tickets[ticket.number] = ticket
        try:
            yield ticket
        finally:
            del self._tickets[ticket.number]
            self._left.set()

    @staticmethod
    def attach(ticket: Ticket, cgroup: Cgroup | None, runnable_ns: int | None) -> None:
        """From now on, the run's container (its cgroup, where this host shows it, and its
        threads' run-and-wait time now) says whether the run is busy."""
        ticket.attached, ticket.cgroup = True, cgroup
        ticket.runnable_ns = runnable_ns
        ticket.sampled = time.monotonic()
