"""Runs one job in a leased container and turns the runner's report into a result.

A job cancelled while it runs is killed by its runner (`cancel`) and its container kept. If
its task is cancelled instead (the runner did not end it in time, see consumer.py), the
container is unreusable: the pool replaces it, and removing the container kills the code.
"""

import asyncio
import logging
import mimetypes
import os
from typing import Any

import orjson
from pydantic import ValidationError

from service import runner_protocol as rp
from service import wire
from service.jobspec import JobSpec
from service.languages import spec_of
from service.models import Language, Outcome, Priority
from service.output_stream import OutputStream
from service.settings import Settings
from service.worker.admission import CpuAdmission, Ticket
from service.worker.cpu_weight import Demotion
from service.worker.docker_engine import EngineUnavailable
from service.worker.outcome import ABNORMAL, classify, result_body
from service.worker.output_relay import answer_relaying
from service.worker.pool import ContainerPool, PoolUnavailable, Sandbox
from service.worker.pools import LanguagePools
from service.worker.programs import Compiled, Compiler, program_fields, ready_again
from service.worker.runner_channel import RunnerGone

log = logging.getLogger(__name__)

MEDIA_TYPES = mimetypes.MimeTypes()  # the standard library's table, not this host's files


def returned_files(report: dict[str, Any]) -> dict[str, Any]:
    """The result's `files` (with media types from the names) when files were asked back."""
    if "files" not in report:
        return {}
    files = {name: {"base64": data, "media_type": media_type(name)}
             for name, data in report["files"].items()}
    return {"files": files, "files_truncated": report["files_truncated"]}


def media_type(name: str) -> str:
    guessed, _ = MEDIA_TYPES.guess_type(name, strict=False)
    return guessed or "application/octet-stream"
LEASE_TIMEOUT_S = 30.0


def compile_error(job: wire.Job, compiled: Compiled) -> bytes:
    """The result of a program that did not compile: nothing ran."""
    total_ms = max(0.0, wire.now_ms() - job.enqueued_ms)
    return orjson.dumps({
        "id": job.id, "outcome": Outcome.COMPILE_ERROR, "exit_code": None, "signal": None,
        "stdout": "", "stderr": "", "stdout_truncated": False, "stderr_truncated": False,
        "timing": {"queue_ms": round(total_ms, 3), "run_ms": 0.0, "total_ms": round(total_ms, 3)},
        "message": compiled.message, "compile": compiled.block,
    })


class Executor:
    def __init__(self, pool: ContainerPool, settings: Settings, output: OutputStream,
                 pools: LanguagePools | None = None):
        self.pool = pool
        self.pools = pools  # by language; without, every job runs on `pool`
        self.settings = settings
        self.output = output  # where a streamed job's output goes as it comes
        self.compiler = Compiler(settings)
        self.executions = 0
        self.admission = CpuAdmission(settings.cpu_slots or 2 * (os.cpu_count() or 1))
        self._running: dict[str, Sandbox] = {}  # job id -> its container, its request sent

    def cancel(self, job_id: str) -> bool:
        """Have the runner of a job running here kill it: the run ends with outcome cancelled
        and its container is kept, proved clean as after a timeout. False if the job's request
        is not with a runner (not yet, or no longer)."""
        sandbox = self._running.get(job_id)
        if sandbox is None:
            return False
        sandbox.channel.post(rp.cancel_message(job_id))
        return True

    async def run(self, job: wire.Job) -> bytes:
        """The result of a job, as JSON: always a result, never an exception."""
        try:
            spec = JobSpec.model_validate_json(job.payload)
        except ValidationError as exc:
            return wire.sandbox_error(job.id, f"unreadable job payload: {exc}", job.enqueued_ms)
        try:
            return await self._run(job, spec)
        except (PoolUnavailable, EngineUnavailable) as exc:
            why = f"no sandbox available: {exc}"
        except RunnerGone as exc:
            why = f"sandbox failed: {exc}"
        log.warning("sandbox error", extra={"job_id": job.id, "reason": why})
        return wire.sandbox_error(job.id, why, job.enqueued_ms)

    def _pool_for(self, spec: JobSpec) -> ContainerPool:
        if self.pools is None:
            return self.pool
        pool = self.pools.for_language(spec.language)
        if pool is None:
            raise PoolUnavailable(f"this worker does not serve {spec.language} "
                                  "(SANDBOX_LANGUAGES)")
        return pool

    async def _run(self, job: wire.Job, spec: JobSpec) -> bytes:
        if spec.cpu_wait_allowance_s <= 0:  # a plain wall-clock timeout: no admission
            return await self._execute(job, spec, None)
        async with self.admission.admitted(job.lane is Priority.INTERACTIVE) as ticket:
            return await self._execute(job, spec, ticket)

    async def _execute(self, job: wire.Job, spec: JobSpec, ticket: Ticket | None) -> bytes:
        pool = self._pool_for(spec)
        sandbox = await pool.lease(LEASE_TIMEOUT_S)
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
            message = rp.run_message(job.id, spec)
            if spec.language != Language.PYTHON:
                message.update(program_fields(spec, compiled))
            await sandbox.channel.send(message)
            self._running[job.id] = sandbox
            if ticket is not None:  # measured from here: the code has its request
                self.admission.attach(ticket, sandbox.container_id)
            sandbox.executions += 1
            self.executions += 1
            demotion = Demotion(sandbox.container_id, lambda: sandbox.weigh(True))
            try:
                answer = (answer_relaying(sandbox.channel, job.id, self.output) if spec.stream
                          else sandbox.channel.receive())
                report = await asyncio.wait_for(answer, spec.runner_wait_s())
            except TimeoutError as exc:
                raise RunnerGone("runner did not answer in time") from exc
            finally:
                demotion.cancel()
            if report.get("op") != rp.OP_RESULT or report.get("id") != job.id:
                raise RunnerGone(f"runner failed: {report.get('error') or report.get('op')}")
            outcome, why = classify(report)
            reusable = outcome not in ABNORMAL
        finally:
            self._running.pop(job.id, None)
            pool.release(sandbox, reusable)
        done_ms = wire.now_ms()
        queue_ms = max(0.0, started_ms - job.enqueued_ms)
        body = result_body(job.id, report, outcome, why, queue_ms, done_ms - job.enqueued_ms)
        body.update(returned_files(report))
        if compiled is not None:
            body["compile"] = compiled.block
        if outcome is not Outcome.OK:
            log.info("execution ended", extra={"job_id": job.id, "outcome": outcome})
        return orjson.dumps(body)
