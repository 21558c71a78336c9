"""The service as tools for language-model agents: their definitions (OpenAI function calling),
and one dispatcher that runs a tool call, shared by `POST /v1/tools/{name}` (tools.py) and the
MCP server (mcp.py).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from service.api.event_stream import RESULT, output_then_answer
from service.api.services import Services
from service.jobspec import InvalidRequest, build_job_spec
from service.languages import REGISTRY
from service.models import RunRequest, SessionRequest, SessionRunRequest
from service.sessions import SessionBroker, SessionRefused, new_id
from service.store import QueueFull, QueueUnavailable, QuotaExceeded
from service.store.output import OutputStream

RETURN_FILES = {
    "type": "array", "items": {"type": "string"},
    "description": "Files to send back once the code has run: glob patterns relative to the "
                   "working directory, e.g. [\"*.png\"]. plt.show() saves each figure as "
                   "figure-<n>.png there (figures left open are saved too), so [\"*.png\"] "
                   "returns the plots as images.",
}
TIMEOUT = {"type": "number", "description": "Wall-clock limit in seconds."}
SESSION_ID = {"type": "string", "description": "The id open_session returned."}

TOOLS: list[dict[str, Any]] = [
    {
        "name": "run_python",
        "description": "Run a Python 3 program in a fresh, isolated sandbox (no network; numpy, "
                       "scipy, sympy, pandas, networkx, matplotlib installed) and get what it "
                       "printed and how it ended. Nothing persists between calls: use a session "
                       "for that.",
        "parameters": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The program."},
                "stdin": {"type": "string", "description": "Standard input, if any."},
                "timeout": TIMEOUT,
                "return_files": RETURN_FILES,
            },
            "required": ["code"],
            "additionalProperties": False,
        },
    },
    {
        "name": "run_code",
        "description": "Compile (where the language needs it) and run a program in a fresh, "
                       "isolated sandbox (no network) and get what it printed and how it ended: "
                       "outcome compile_error with the compiler's output when it did not "
                       "compile. The program reads stdin and writes stdout.",
        "parameters": {
            "type": "object",
            "properties": {
                "language": {"type": "string", "enum": [spec.name for spec in REGISTRY],
                             "description": "The program's language."},
                "code": {"type": "string", "description": "The program (Java: a public class "
                         "with main; any name)."},
                "stdin": {"type": "string", "description": "Standard input, if any."},
                "timeout": TIMEOUT,
            },
            "required": ["language", "code"],
            "additionalProperties": False,
        },
    },
    {
        "name": "open_session",
        "description": "Open a Python session (a sandbox of its own, like a notebook kernel): "
                       "variables, imports, functions and files persist from one run_in_session "
                       "call to the next. Returns its session_id. It closes after idle_ttl_s "
                       "without calls; close it with close_session when done.",
        "parameters": {
            "type": "object",
            "properties": {
                "timeout": {**TIMEOUT, "description": "Default wall-clock limit of each call, s."},
                "memory_mb": {"type": "integer", "description": "Memory of the session, MiB."},
                "idle_ttl_s": {"type": "number", "description": "Close after this long unused, s."},
            },
            "additionalProperties": False,
        },
    },
    {
        "name": "run_in_session",
        "description": "Run Python code in an open session, like the next notebook cell: it sees "
                       "everything earlier calls defined. Returns what it printed and `value`, "
                       "the repr of its last expression. A call past its timeout is interrupted "
                       "(KeyboardInterrupt) and the session goes on.",
        "parameters": {
            "type": "object",
            "properties": {
                "session_id": SESSION_ID,
                "code": {"type": "string", "description": "The code to run."},
                "timeout": TIMEOUT,
                "return_files": {**RETURN_FILES, "description": RETURN_FILES["description"]
                                 + " In a session, only files written by this call return."},
            },
            "required": ["session_id", "code"],
            "additionalProperties": False,
        },
    },
    {
        "name": "close_session",
        "description": "Close a session and discard its state.",
        "parameters": {
            "type": "object",
            "properties": {"session_id": SESSION_ID},
            "required": ["session_id"],
            "additionalProperties": False,
        },
    },
]
TOOL_NAMES = frozenset(tool["name"] for tool in TOOLS)


def openai_tools() -> list[dict[str, Any]]:
    """The `tools` array of an OpenAI chat-completions request."""
    return [{"type": "function", "function": tool} for tool in TOOLS]


@dataclass
class ToolOutput:
    """What a tool call gives back: text for the model, the images made, the full result."""

    text: str
    is_error: bool = False
    images: list[dict[str, str]] = field(default_factory=list)
    result: dict[str, Any] | None = None


Progress = Callable[[str], Awaitable[None]]


async def relayed(answer: Awaitable[bytes], output: OutputStream, request_id: str,
                  progress: Progress) -> bytes:
    """The answer, the output handed to `progress` as it comes meanwhile."""
    body = b""
    async for name, data in output_then_answer(answer, output, request_id):
        if name == RESULT:
            body = data
        else:
            await progress(data)
    return body


async def call_tool(name: str, arguments: dict[str, Any], services: Services,
                    broker: SessionBroker, progress: Progress | None = None) -> ToolOutput:
    """Run one tool call; refusals become error outputs, never exceptions. With `progress`, the
    code's output is handed to it as it is printed (run_python, run_in_session)."""
    try:
        if name in ("run_python", "run_code"):
            spec = build_job_spec(RunRequest.model_validate(arguments), services.settings)
            if progress is None:
                return summary(await services.submitter.run(spec))
            spec.stream = True
            job_id, result = await services.submitter.start(spec)
            return summary(await relayed(result, services.store.output, job_id, progress))
        if name == "open_session":
            info = orjson.loads(await broker.open(SessionRequest.model_validate(arguments),
                                                  services.tenant, services.settings))
            return ToolOutput(orjson.dumps({"session_id": info["id"], "timeout": info["timeout"],
                                            "idle_ttl_s": info["idle_ttl_s"]}).decode(),
                              result=info)
        if name == "run_in_session":
            args = dict(arguments)
            session_id = str(args.pop("session_id", ""))
            request = SessionRunRequest.model_validate(args)
            if progress is None:
                return summary(await broker.run(session_id, request, services.tenant,
                                                services.settings))
            cell = await broker.prepare(session_id, request, services.tenant, services.settings,
                                        stream=True)
            call_id = new_id()
            return summary(await relayed(broker.run_prepared(cell, call_id), broker.output,
                                         call_id, progress))
        if name == "close_session":
            info = await broker.close(str(arguments.get("session_id", "")), services.tenant)
            return ToolOutput(orjson.dumps({"session_id": info.id, "state": info.state}).decode(),
                              result=info.model_dump(mode="json"))
    except ValidationError as exc:
        return error_output("invalid_arguments", str(exc))
    except InvalidRequest as exc:
        return error_output(exc.reason, str(exc))
    except SessionRefused as exc:
        return error_output(exc.reason, str(exc))
    except QueueFull:
        return error_output("queue_full", "the sandbox queue is full; retry in a moment")
    except QuotaExceeded:
        return error_output("quota_exceeded", "your tenant's queue quota is full; retry in a "
                            "moment")
    except QueueUnavailable:
        return error_output("queue_unavailable", "the sandbox queue is unreachable; retry later")
    return error_output("unknown_tool", f"no tool {name!r}")


def error_output(reason: str, message: str) -> ToolOutput:
    return ToolOutput(orjson.dumps({"error": reason, "message": message}).decode(), is_error=True)


TEXT_KEYS = ("outcome", "exit_code", "stdout", "stderr", "value", "message", "session_state",
             "stdout_truncated", "stderr_truncated", "files_truncated")


def summary(raw: bytes) -> ToolOutput:
    """A run's result as the model should read it: no base64; images apart."""
    result = orjson.loads(raw)
    text = {k: result[k] for k in TEXT_KEYS if result.get(k) not in (None, False)}
    text["stdout"], text["stderr"] = result["stdout"], result["stderr"]
    if result["outcome"] == "compile_error":
        text["compile"] = {k: result["compile"][k] for k in ("stdout", "stderr", "exit_code")}
    files = result.get("files") or {}
    if files:
        text["files"] = sorted(files)
    images = [{"name": name, **content} for name, content in sorted(files.items())
              if content["media_type"].startswith("image/")]
    return ToolOutput(orjson.dumps(text).decode(), images=images, result=result)
