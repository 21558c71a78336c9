"""Runs one job in a leased container and turns the runner's report into a result.

A job cancelled while it runs is killed by its runner (`cancel`) and its container kept. If
its task is cancelled instead (the runner did not end it in time, see consumer.py), the
container is unreusable: the pool replaces it, and removing the container kills the code.
"""

import asyncio
import logging
import os
from collections.abc import Callable

from pydantic import ValidationError

from service import runner_protocol as rp
from service import wire
from service.imports import ImportKinds, Kind, template_of
from service.jobspec import JobSpec
from service.languages import spec_of
from service.models import Language, Outcome, Priority
from service.result import ExecutionResult, from_report, not_run, sandbox_error
from service.settings import Settings
from service.store.output import OutputStream
from service.worker.admission import CpuAdmission, Ticket
from service.worker.cpu_weight import Demotion
from service.worker.docker_engine import EngineUnavailable
from service.worker.exchange import exchange
from service.worker.pool import ContainerPool, PoolUnavailable, Sandbox
from service.worker.pools import LanguagePools
from service.worker.programs import Compiled, Compiler, program_fields, ready_again
from service.worker.runner_channel import RunnerGone

log = logging.getLogger(__name__)

LEASE_TIMEOUT_S = 30.0
MEASURE_AFTER_S = 0.05  # a run's container is first read this long after the run starts


def compile_error(job: wire.Job, compiled: Compiled) -> ExecutionResult:
    """The result of a program that did not compile: nothing ran."""
    waited = max(0.0, wire.now_ms() - job.enqueued_ms)
    result = not_run(job.id, Outcome.COMPILE_ERROR, compiled.message, waited)
    result.extra["compile"] = compiled.block
    return result


class Running:
    """What goes with a run from when its runner has the request (the code starts then) to its
    answer: a cancel reaches it, admission measures its container, a long run is demoted.

    Its container is first measured MEASURE_AFTER_S after it starts, not at once: reading a
    container's threads is a dozen /proc files, and most runs have ended by then. Until that
    first reading the run counts as busy for admission (as it would until its first sample),
    and its demotion counts its run-and-wait time from then."""

    def __init__(self, executor: "Executor", job_id: str, sandbox: Sandbox,
                 ticket: Ticket | None):
        self.executor, self.job_id, self.sandbox, self.ticket = executor, job_id, sandbox, ticket
        self.demotion: Demotion | None = None
        self.measuring: asyncio.TimerHandle | None = None

    def started(self) -> None:
        self.executor.running[self.job_id] = self.sandbox
        self.measuring = asyncio.get_running_loop().call_later(MEASURE_AFTER_S, self.measure)

    def measure(self) -> None:
        self.measuring = None
        cgroup = self.sandbox.cgroup
        runnable_ns, ready = (None, False) if cgroup is None else cgroup.runnable()  # for both
        if self.ticket is not None:
            self.executor.admission.attach(self.ticket, cgroup, runnable_ns)
        if cgroup is not None:
            self.demotion = Demotion(cgroup, runnable_ns, ready,
                                     lambda: self.sandbox.weigh(True))

    def ended(self) -> None:
        self.executor.running.pop(self.job_id, None)
        if self.measuring is not None:
            self.measuring.cancel()
        if self.demotion is not None:
            self.demotion.cancel()


class Executor:
    def __init__(self, pools: LanguagePools, settings: Settings, output: OutputStream):
        self.pools = pools
        self.kinds = ImportKinds(settings.preload, settings.scientific_preload)
        self.settings = settings
        self.output = output  # where a streamed job's output goes as it comes
        self.compiler = Compiler(settings)
        self.executions = 0
        self.admission = CpuAdmission(settings.cpu_slots or 2 * (os.cpu_count() or 1))
        self.running: dict[str, Sandbox] = {}  # job id -> its container, its request sent

    def cancel(self, job_id: str) -> bool:
        """Have the runner of a job running here kill it: the run ends with outcome cancelled
        and its container is kept, proved clean as after a timeout. False if the job's request
        is not with a runner (not yet, or no longer)."""
        sandbox = self.running.get(job_id)
        if sandbox is None:
            return False
        sandbox.channel.post(rp.cancel_message(job_id))
        return True

    async def run(self, job: wire.Job,
                  under_way: Callable[[], None] = lambda: None) -> ExecutionResult:
        """The result of a job: always a result, never an exception. `under_way` is called
        once it has passed CPU admission (at once if it needs none)."""
        try:
            spec = JobSpec.model_validate_json(job.payload)
        except ValidationError as exc:
            return sandbox_error(job.id, f"unreadable job payload: {exc}", job.enqueued_ms)
        try:
            return await self._run(job, spec, under_way)
        except (PoolUnavailable, EngineUnavailable) as exc:
            why = f"no sandbox available: {exc}"
        except RunnerGone as exc:
            why = f"sandbox failed: {exc}"
        log.warning("sandbox error", extra={"job_id": job.id, "reason": why})
        return sandbox_error(job.id, why, job.enqueued_ms)

    def _pool_for(self, spec: JobSpec, kind: Kind) -> ContainerPool:
        pool = self.pools.for_job(spec, kind)
        if pool is None:
            raise PoolUnavailable(f"this worker does not serve {spec.language} "
                                  "(SANDBOX_LANGUAGES)")
        return pool

    async def _run(self, job: wire.Job, spec: JobSpec,
                   under_way: Callable[[], None]) -> ExecutionResult:
        if spec.cpu_wait_allowance_s <= 0:  # a plain wall-clock timeout: no admission
            under_way()
            return await self._execute(job, spec, None)
        async with self.admission.admitted(job.lane is Priority.INTERACTIVE) as ticket:
            under_way()
            return await self._execute(job, spec, ticket)

    async def _execute(self, job: wire.Job, spec: JobSpec,
                       ticket: Ticket | None) -> ExecutionResult:
        kind, imports = self.kinds.of_job(spec)
        pool = self._pool_for(spec, kind)
        template = template_of(kind)
        sandbox = await pool.lease(LEASE_TIMEOUT_S, template)
        reusable = False
        compiled = None
        started_ms = wire.now_ms()
        sandbox.weigh(job.lane is Priority.BULK)
        try:
            if spec_of(spec.language).compile:
                compiled, reusable = await self.compiler.compiled(job.id, spec, pool, sandbox)
                if compiled.files is None:
                    return compile_error(job, compiled)
                if not compiled.block["cached"]:
                    await ready_again(sandbox)
                reusable = False
            await pool.set_memory(sandbox, spec.sandbox_memory_mb())
            message = rp.run_message(job.id, spec, template, imports)
            sandbox.template = template  # its runner's next child is forked from it too
            if spec.language != Language.PYTHON:
                message.update(program_fields(spec, compiled))
            sandbox.executions += 1
            self.executions += 1
            running = Running(self, job.id, sandbox, ticket)
            try:
                answer = await exchange(sandbox.channel, message, spec.runner_wait_s(),
                                        self.output if spec.stream else None, running.started)
            finally:
                running.ended()
            reusable = answer.reusable
        finally:
            pool.release(sandbox, reusable)
        done_ms = wire.now_ms()
        queue_ms = max(0.0, started_ms - job.enqueued_ms)
        result = from_report(job.id, answer.report, answer.outcome, answer.why, queue_ms,
                             done_ms - job.enqueued_ms)
        if compiled is not None:
            result.extra["compile"] = compiled.block
        if result.outcome is not Outcome.OK:
            log.info("execution ended", extra={"job_id": job.id, "outcome": result.outcome})
        return result
