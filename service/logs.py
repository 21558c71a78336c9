"""Structured JSON logs, one object a line, carrying whatever `extra` a call site adds.

Lines logged while a job is handled carry its `job_id` and `tenant` without each call site passing
them: a worker handles each job in its own asyncio task, and bind_job() tags that task's context
(an API request's task is tagged with its tenant as its key is checked).
"""

import logging
import sys
import time
from contextvars import ContextVar

import orjson

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
_job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
_tenant: ContextVar[str | None] = ContextVar("tenant", default=None)


def bind_job(job_id: str, tenant: str | None = None) -> None:
    """Tag every line logged from now on in the current task (and tasks it starts) with job_id
    (and the job's tenant)."""
    _job_id.set(job_id)
    if tenant:
        _tenant.set(tenant)


def bind_tenant(tenant: str) -> None:
    """Tag every line logged from now on in the current task with the tenant it serves."""
    _tenant.set(tenant)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        job_id = _job_id.get()
        if job_id is not None:
            entry["job_id"] = job_id
        tenant = _tenant.get()
        if tenant is not None:
            entry["tenant"] = tenant
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
