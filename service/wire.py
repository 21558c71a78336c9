"""The job and result wire format between API processes and workers, through Redis."""

import time
from dataclasses import dataclass

import orjson

from service.models import Priority

# Fields of an entry in the job stream.
F_ID = "id"
F_PAYLOAD = "payload"
F_REPLY_TO = "reply_to"
F_ENQUEUED_MS = "enqueued_ms"
F_DEADLINE_MS = "deadline_ms"
F_TENANT = "tenant"  # also a field of a job hash and of a session hash
# Fields of a job hash and of a reply-stream entry.
F_STATE = "state"
F_RESULT = "result"
F_REFUSED = "refused"  # of a reply-stream entry: its result is a session call's Refusal
# Field of a job hash while it runs: the cancel stream of the worker running it.
F_CANCEL_TO = "cancel_to"
# Fields of an entry in a worker's session-call stream (with F_ID, F_PAYLOAD and F_REPLY_TO).
F_OP = "op"
F_SESSION = "session"
OP_OPEN, OP_RUN, OP_CLOSE = "open", "run", "close"
OP_BIND = "bind"  # a warm container claimed for a session: make it the session's (no answer)


def now_ms() -> float:
    return time.time() * 1000


@dataclass(frozen=True)
class Job:
    """A job as a worker sees it: the request (still JSON), where to answer, and the lane (the
    stream) it was read from."""

    entry_id: str
    id: str
    payload: bytes
    reply_to: str
    enqueued_ms: float
    deadline_ms: float
    tenant: str = ""
    lane: Priority = Priority.INTERACTIVE

    @property
    def claim_key(self) -> tuple[str, str, str]:
        """What names the job's delivery: its entry in its stream, the tenant's in its lane (two
        streams may give the same entry id)."""
        return self.lane.value, self.tenant, self.entry_id

    def fields(self) -> dict[str, str | bytes | float]:
        """The job's entry in the job stream."""
        return {F_ID: self.id, F_PAYLOAD: self.payload, F_REPLY_TO: self.reply_to,
                F_ENQUEUED_MS: self.enqueued_ms, F_DEADLINE_MS: self.deadline_ms,
                F_TENANT: self.tenant}

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes],
                   lane: Priority) -> "Job":
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        return cls(
            entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            id=text(F_ID),
            payload=fields.get(F_PAYLOAD.encode(), b"{}"),
            reply_to=text(F_REPLY_TO),
            enqueued_ms=float(text(F_ENQUEUED_MS) or 0),
            deadline_ms=float(text(F_DEADLINE_MS) or 0),
            tenant=text(F_TENANT),
            lane=lane,
        )


@dataclass(frozen=True)
class SessionCall:
    """A call to a session (open, run or close), sent to the worker that holds it; the answer
    goes to the caller's reply stream under the call's id."""

    entry_id: str
    op: str
    session_id: str
    id: str
    payload: bytes
    reply_to: str

    def fields(self) -> dict[str, str | bytes]:
        return {F_OP: self.op, F_SESSION: self.session_id, F_ID: self.id,
                F_PAYLOAD: self.payload, F_REPLY_TO: self.reply_to}

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> "SessionCall":
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        return cls(
            entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            op=text(F_OP),
            session_id=text(F_SESSION),
            id=text(F_ID),
            payload=fields.get(F_PAYLOAD.encode(), b"{}"),
            reply_to=text(F_REPLY_TO),
        )


@dataclass(frozen=True)
class Refusal:
    """The answer to a session call that was not carried out; its reply entry says so
    (F_REFUSED) beside its body, so that no caller tells it from an answer by the bytes."""

    reason: str
    message: str

    def encode(self) -> bytes:
        return orjson.dumps({"error": self.reason, "message": self.message})


class Refused(Exception):
    """A worker refused the call: the refusal's body, as its reply entry carried it."""

    def __init__(self, body: bytes):
        super().__init__(body.decode(errors="replace"))
        self.body = body
