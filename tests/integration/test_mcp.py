"""The MCP server at /mcp, driven by the official SDK's own client over streamable HTTP."""

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client  # the 1.x name of the SDK client

from service.api.app import create_app
from service.settings import Settings
from tests.support import Service

# mcp 1.x also offers the client as `streamable_http_client` and marks this name deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:Use `streamable_http_client`:DeprecationWarning")


@asynccontextmanager
async def mcp_session(service: Service) -> AsyncIterator[ClientSession]:
    async with (streamablehttp_client(f"{service.base_url}/mcp", timeout=120) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def text_of(result: types.CallToolResult) -> dict:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return json.loads(first.text)


async def test_list_tools_and_run_code(service: Service) -> None:
    async with mcp_session(service) as session:
        listed = await session.list_tools()
        names = {t.name for t in listed.tools}
        assert names == {"run_python", "run_code", "open_session", "run_in_session",
                         "close_session"}
        run_python = next(t for t in listed.tools if t.name == "run_python")
        assert run_python.inputSchema["required"] == ["code"]
        result = await session.call_tool("run_python", {"code": "print(sum(range(10)))"})
        assert result.isError is False
        out = text_of(result)
        assert (out["outcome"], out["stdout"]) == ("ok", "45\n")


async def test_output_comes_as_progress_when_the_client_asks(service: Service) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')"
    async with mcp_session(service) as session:
        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        result = await session.call_tool("run_python", {"code": code},
                                         progress_callback=on_progress)
        assert text_of(result)["stdout"] == "first\nsecond\n"
        assert [p for p, _ in seen] == list(range(1, len(seen) + 1))
        assert "".join(m or "" for _, m in seen) == "first\nsecond\n"
        assert seen[0][1] == "first\n"
        sid = text_of(await session.call_tool("open_session", {}))["session_id"]
        seen.clear()
        cell = await session.call_tool("run_in_session", {"session_id": sid, "code": code},
                                       progress_callback=on_progress)
        assert text_of(cell)["stdout"] == "first\nsecond\n"
        assert "".join(m or "" for _, m in seen) == "first\nsecond\n"
        await session.call_tool("close_session", {"session_id": sid})
        plain = await session.call_tool("run_python", {"code": "print(1)"})
        assert text_of(plain)["stdout"] == "1\n"


async def test_state_kept_across_calls_and_a_plot(service: Service) -> None:
    async with mcp_session(service) as session:
        opened = await session.call_tool("open_session", {"idle_ttl_s": 60})
        sid = text_of(opened)["session_id"]
        first = await session.call_tool("run_in_session", {"session_id": sid, "code": "x = 41"})
        assert text_of(first)["outcome"] == "ok"
        second = await session.call_tool("run_in_session", {"session_id": sid, "code": "x + 1"})
        assert text_of(second)["value"] == "42"
        plot = await session.call_tool("run_in_session", {
            "session_id": sid, "return_files": ["*.png"],
            "code": "import matplotlib.pyplot as plt\nplt.plot([x, 1])\nplt.show()"})
        images = [c for c in plot.content if isinstance(c, types.ImageContent)]
        assert len(images) == 1 and images[0].mimeType == "image/png"
        assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
        closed = await session.call_tool("close_session", {"session_id": sid})
        assert text_of(closed)["state"] == "closed"
        after = await session.call_tool("run_in_session", {"session_id": sid, "code": "x"})
        assert after.isError is True and text_of(after)["error"] == "session_closed"


async def test_state_lives_in_the_sandbox_session_not_the_connection(service: Service) -> None:
    """Stateless MCP: a second connection (any API process) reaches the same sandbox session."""
    async with mcp_session(service) as session:
        sid = text_of(await session.call_tool("open_session", {}))["session_id"]
        await session.call_tool("run_in_session", {"session_id": sid, "code": "kept = 'yes'"})
    async with mcp_session(service) as session:
        again = await session.call_tool("run_in_session", {"session_id": sid, "code": "kept"})
        assert text_of(again)["value"] == "'yes'"
        await session.call_tool("close_session", {"session_id": sid})


async def test_bad_arguments_are_tool_errors(service: Service) -> None:
    async with mcp_session(service) as session:
        result = await session.call_tool("run_python", {"code": 5})
        assert result.isError is True


async def test_mcp_wants_the_api_key_when_keys_are_set() -> None:
    """Refused before anything else runs, so no Redis or worker is needed to see it."""
    app = create_app(Settings(api_keys="k1"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                     headers={"accept": "application/json, text/event-stream"})
        assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
        wrong = await client.post("/mcp", json={}, headers={"authorization": "Bearer k2"})
        assert wrong.status_code == 401
