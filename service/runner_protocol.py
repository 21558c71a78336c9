"""The worker's copy of the runner's wire format (sandbox_images/python/runner.py).

Frames in both directions: a 4-byte big-endian length, then a JSON object. The worker sends
`run` requests; the runner answers `ready` (warm, clean, waiting), `result` or `error`.
A contract test runs the real runner against these definitions.
"""

import struct
from typing import Any

import orjson

from service.jobspec import JobSpec

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")

OP_RUN = "run"
OP_READY = "ready"
OP_RESULT = "result"
OP_ERROR = "error"

# Keys of a `result` message.
RESULT_KEYS = frozenset({
    "op", "id", "exit_code", "signal", "stdout", "stderr", "stdout_truncated",
    "stderr_truncated", "timed_out", "output_limited", "oom_killed", "run_ms",
})


def encode_frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


def run_message(job_id: str, spec: JobSpec) -> dict[str, Any]:
    """A `run` request for the runner."""
    return {
        "op": OP_RUN,
        "id": job_id,
        "code": spec.code,
        "stdin": spec.stdin_b64,
        "files": spec.files_b64,
        "timeout_s": spec.timeout_s,
        "max_output_bytes": spec.max_output_bytes,
        "max_file_bytes": spec.max_file_bytes,
        "fresh_interpreter": spec.fresh_interpreter,
    }
