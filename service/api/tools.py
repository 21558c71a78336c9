"""/v1/tools: the agent tools (agent_tools.py) over plain HTTP.

`GET /v1/tools` is the `tools` array a chat-completions request takes as is. A tool call's
arguments go to `POST /v1/tools/{name}` unchanged; the answer's `content` is the text for the
model (JSON: outcome, stdout, stderr, value, file names) and `images` the pictures it made.
"""

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from service.api.agent_tools import TOOL_NAMES, call_tool, openai_tools
from service.api.auth import require_key
from service.api.caller import watch_caller
from service.api.services import Services, get_services

router = APIRouter(prefix="/v1/tools", tags=["tools"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])


@router.get("")
async def list_tools() -> list[dict[str, Any]]:
    """The tools, in OpenAI's function-calling format: pass this list as `tools`."""
    return openai_tools()


@router.post("/{name}")
async def run_tool(name: str, request: Request,
                   arguments: dict[str, Any] = Body(default_factory=dict),
                   services: Services = Depends(get_services)) -> dict[str, Any]:
    """Run one tool call with its arguments (the model's JSON, unchanged): `content` is the text
    to hand back to the model, `images` the images the code made, `result` the full result."""
    if name not in TOOL_NAMES:
        raise HTTPException(404, f"no tool {name!r}; GET /v1/tools lists them")
    output = await call_tool(name, arguments, services, request.app.state.sessions)
    return {"content": output.text, "is_error": output.is_error, "images": output.images,
            "result": output.result}
