"""The worker's copy of the runner's wire format (sandbox_images/runner/sandbox_runner/frames.py).

Frames in both directions: a 4-byte big-endian length, then a JSON object. The worker sends
`run` requests; the runner answers `ready` (warm, clean, waiting), then `result` (anything
else, an `error` with its traceback say, is a runner failure). A `cancel` sent while a run goes
kills it (its result then says `cancelled`). A
`session` request (answered `session_ready`) turns the container into one session's: then each
`cell` request is answered by a `result`, until the worker closes the stream.
A run ends at `timeout_s` of its time (wall clock less its waits for a CPU), at `wall_limit_s`
of wall clock, or at `cpu_timeout_s` of CPU time (if set); `time_limit` says which.
A `run` or `session` request's `template` names the runner's template its child is forked from
(`bare`, or `preloaded`: numpy or the scientific stack; see service/imports.py), the preloaded
one when absent; its `imports`, the packages of the scientific stack the code imports, from the
same scan (the runner's next child writes ahead the pages such code writes).
A contract test runs the real runner against these definitions.
"""

import struct
from collections.abc import Collection
from typing import Any

import orjson

from service.jobspec import JobSpec

PROTOCOL_VERSION = 4
HEADER = struct.Struct(">I")

OP_RUN = "run"
OP_READY = "ready"
OP_RESULT = "result"
OP_SESSION = "session"
OP_SESSION_READY = "session_ready"
OP_CELL = "cell"
OP_OUTPUT = "output"  # a piece of output, sent before the result when a request streams
OP_CANCEL = "cancel"  # kill the run of this id; ignored when it has ended
# A request's `template`: the runner's templates (sandbox_runner/template.py).
TEMPLATE_BARE, TEMPLATE_PRELOADED = "bare", "preloaded"

# Keys of a `result` message.
RESULT_KEYS = frozenset({
    "op", "id", "exit_code", "signal", "stdout", "stderr", "stdout_truncated",
    "stderr_truncated", "timed_out", "output_limited", "oom_killed", "memory_limit_hit",
    "run_ms", "cpu_ms", "cpu_wait_ms", "time_limit", "cancelled",
})
# A result's `time_limit`: which limit ended the run, when one did.
LIMIT_TIMEOUT = "timeout"  # its time, less its waits for a CPU (a cell's: wall clock)
LIMIT_WALL = "wall_limit"  # the hard wall-clock cap past the timeout
LIMIT_CPU = "cpu_timeout"
# Keys a result adds when files were asked back, and those of a cell's result.
FILES_KEYS = frozenset({"files", "files_truncated"})
CELL_KEYS = frozenset({"value", "session_ended"})


def encode_frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


def run_message(job_id: str, spec: JobSpec, template: str | None = None,
                imports: Collection[str] = ()) -> dict[str, Any]:
    """A `run` request for the runner; `template`: the one its child is forked from (bare or
    preloaded; see service/imports.py), the preloaded one when None; `imports`: the packages of
    the scientific stack the code imports."""
    message = {
        "op": OP_RUN,
        "id": job_id,
        "code": spec.code,
        "stdin": spec.stdin_b64,
        "files": spec.files_b64,
        "timeout_s": spec.timeout_s,
        "wall_limit_s": spec.wall_limit_s(),
        "cpu_timeout_s": spec.cpu_timeout_s,
        "max_output_bytes": spec.max_output_bytes,
        "max_file_bytes": spec.max_file_bytes,
        "fresh_interpreter": spec.fresh_interpreter,
    }
    if template is not None:
        message["template"] = template
    if imports:
        message["imports"] = sorted(imports)
    if spec.argv:
        message["argv"] = spec.argv
    if spec.stream:
        message["stream"] = True
    return message | return_fields(spec)


def return_fields(spec: JobSpec) -> dict[str, Any]:
    """What a request adds when it wants files back (nothing otherwise: the runner's fast path)."""
    if not spec.return_files:
        return {}
    return {"return_files": spec.return_files, "max_return_files": spec.max_return_files,
            "max_return_bytes": spec.max_return_bytes}


def cancel_message(job_id: str) -> dict[str, Any]:
    return {"op": OP_CANCEL, "id": job_id}


def session_message(ref: str, max_file_bytes: int) -> dict[str, Any]:
    """Turns a runner's waiting child into a session's (`ref` comes back in `session_ready`)."""
    return {"op": OP_SESSION, "id": ref, "max_file_bytes": max_file_bytes}


def cell_message(call_id: str, spec: JobSpec, interrupt_grace_s: float) -> dict[str, Any]:
    """One call of a session: run `spec.code` in the session's namespace."""
    message = {
        "op": OP_CELL,
        "id": call_id,
        "code": spec.code,
        "files": spec.files_b64,
        "timeout_s": spec.timeout_s,
        "max_output_bytes": spec.max_output_bytes,
        "interrupt_grace_s": interrupt_grace_s,
    }
    if spec.ipython:
        message["ipython"] = spec.ipython
    if spec.stream:
        message["stream"] = True
    return message | return_fields(spec)
