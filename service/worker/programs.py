"""Programs in languages other than Python: compiled once, in the sandbox, then run by their
command (service/languages.py says which).

A compile is an execution like any other (the sandbox uid, a fresh working directory, its own
time and memory limits, output caps, clean-up after it): the runner runs the compiler and sends
back the files the run needs (as it sends back `return_files`). The worker keeps them in a
content-addressed cache: the key is a hash of everything that decides what the compiler makes
(language, compiler version, image, compile command, source and files), so a program compiled
once is run again without compiling, and a caller can only ever get the compiled form of the very
program it sent. While one job compiles a program, jobs of the same program wait for it rather
than compile it too (single flight): a judging of N cases compiles once on each worker it reaches.
A compile that failed is kept like one that succeeded (N cases of a program that does not compile
fail at once), but not one killed for its time or memory: that answer goes only to the jobs
waiting for it, since the next try, on a quieter host or with other limits, may pass.
"""

import asyncio
import collections
import hashlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

from service import runner_protocol as rp
from service.jobspec import JobSpec
from service.languages import LanguageSpec, spec_of
from service.models import Outcome
from service.settings import MIB, Settings
from service.worker.exchange import exchange
from service.worker.pool import CLEANUP_TIMEOUT_S, ContainerPool, Sandbox

COMPILE_OUTPUT_BYTES = 1 * MIB  # of the compiler's stdout and of its stderr, each
COMPILE_GRACE_S = 30.0  # past the compile timeout, before a silent runner counts as dead
MAX_ARTIFACT_FILES = 1024  # Java writes a class file per class


@dataclass(frozen=True)
class Compiled:
    """What one compile gave: its report, and the program's files (None: it did not compile)."""

    block: dict[str, Any]  # the result's `compile`
    files: dict[str, str] | None
    message: str | None  # why it did not compile
    deterministic: bool = True  # False after a kill for its limits: not kept, only shared
    # with the jobs waiting for that very compile (a loaded host may compile slower next time)

    @property
    def size(self) -> int:
        return sum(len(b) for b in (self.files or {}).values()) + len(orjson.dumps(self.block))

    def reused(self) -> "Compiled":
        return replace(self, block={**self.block, "cached": True})


class CompileCache:
    """Compiled programs by key, least recently used evicted past `capacity` bytes."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.used = 0
        self._entries: collections.OrderedDict[str, Compiled] = collections.OrderedDict()

    def get(self, key: str) -> Compiled | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Compiled) -> None:
        if entry.size > self.capacity:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= old.size
        self._entries[key] = entry
        self.used += entry.size
        while self.used > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self.used -= evicted.size


def compile_key(spec: JobSpec, language: LanguageSpec, image: str) -> str:
    """Everything that decides the compiled program, hashed."""
    compile_argv, _ = language.commands(spec.code)
    content = [language.name, language.version, image, compile_argv,
               language.source_name(spec.code), spec.code, sorted(spec.files_b64.items())]
    return hashlib.sha256(orjson.dumps(content)).hexdigest()


def failure_message(outcome: Outcome, report: dict[str, Any], spec: JobSpec) -> str | None:
    """Why a compile gave no program; None when it gave one."""
    if outcome is Outcome.TIMEOUT:
        return f"compile timed out after {spec.compile_timeout_s:g} s"
    if outcome is Outcome.MEMORY_LIMIT:
        return f"the compiler ran out of memory ({spec.compile_memory_mb} MiB)"
    if outcome is Outcome.OUTPUT_LIMIT:
        return "the compiler's output passed its cap"
    if outcome is not Outcome.OK:
        code = report["exit_code"]
        return "compilation failed" + (f" (exit code {code})" if code is not None else
                                       f": {outcome.value}")
    if report.get("files_truncated"):
        return "the compiled program is larger than this service keeps"
    if not report.get("files"):
        return "the compiler produced no program"
    return None


def compile_message(job_id: str, spec: JobSpec, language: LanguageSpec,
                    settings: Settings) -> dict[str, Any]:
    compile_argv, _ = language.commands(spec.code)
    return {
        "op": rp.OP_RUN, "id": job_id, "code": spec.code,
        "source": language.source_name(spec.code), "command": list(compile_argv),
        "stdin": None, "files": spec.files_b64, "timeout_s": spec.compile_timeout_s,
        "max_output_bytes": COMPILE_OUTPUT_BYTES, "max_file_bytes": spec.max_file_bytes,
        "fresh_interpreter": False, "return_files": list(language.artifacts),
        "max_return_files": MAX_ARTIFACT_FILES, "max_return_bytes": settings.max_artifact_bytes,
    }


def program_fields(spec: JobSpec, compiled: Compiled | None) -> dict[str, Any]:
    """What a `run` request adds for a language run by its command: the command, and the source
    or the compiled program's files."""
    language = spec_of(spec.language)
    _, run_argv = language.commands(spec.code)
    fields: dict[str, Any] = {"command": list(run_argv)}
    if compiled is None:
        fields["source"] = language.source_name(spec.code)
    else:
        fields["code"] = ""
        fields["files"] = {**spec.files_b64, **(compiled.files or {})}
        fields["executable"] = list(language.executables)
    return fields


class Compiler:
    """Compiles in a leased sandbox, once per key (cache and single flight)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cache = CompileCache(settings.compile_cache_mb * MIB)
        self._pending: dict[str, asyncio.Future[Compiled | None]] = {}

    async def compiled(self, job_id: str, spec: JobSpec, pool: ContainerPool,
                       sandbox: Sandbox) -> tuple[Compiled, bool]:
        """The program compiled (from the cache, or now in `sandbox`: then `cached` is false in its
        block, and the runner's next `ready` is still to come), and whether the sandbox may be
        used further (False after a compile killed for its limits)."""
        language = spec_of(spec.language)
        key = compile_key(spec, language, pool.image)
        while True:
            hit = self.cache.get(key)
            if hit is not None:
                return hit.reused(), True
            pending = self._pending.get(key)
            if pending is None:
                break
            shared = await asyncio.shield(pending)
            if shared is not None:  # None: that compile failed (ours); try it here
                return shared.reused(), True
        done: asyncio.Future[Compiled | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        result = None
        try:
            compiled, reusable = await self._compile(job_id, spec, language, pool, sandbox)
            result = compiled
            if compiled.deterministic:
                self.cache.put(key, compiled)
        finally:
            del self._pending[key]
            done.set_result(result)
        return compiled, reusable

    async def _compile(self, job_id: str, spec: JobSpec, language: LanguageSpec,
                       pool: ContainerPool, sandbox: Sandbox) -> tuple[Compiled, bool]:
        await pool.set_memory(sandbox, spec.compile_memory_mb)
        sandbox.executions += 1
        answer = await exchange(sandbox.channel, compile_message(job_id, spec, language,
                                                                 self.settings),
                                spec.compile_timeout_s + COMPILE_GRACE_S)
        report, outcome = answer.report, answer.outcome
        message = failure_message(outcome, report, spec)
        block = {"stdout": report["stdout"], "stderr": report["stderr"],
                 "exit_code": report["exit_code"], "duration_ms": report["run_ms"],
                 "cached": False}
        files = None if message else report["files"]
        killed = outcome in (Outcome.TIMEOUT, Outcome.MEMORY_LIMIT, Outcome.KILLED)
        return Compiled(block, files, message, deterministic=not killed), answer.reusable


async def ready_again(sandbox: Sandbox) -> None:
    """Until the runner has cleaned up after the compile and waits for the run."""
    await sandbox.channel.ready(CLEANUP_TIMEOUT_S)
