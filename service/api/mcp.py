"""The tools of /v1/tools over the Model Context Protocol, at /mcp (streamable HTTP).

Built on the official SDK's low-level server, stateless: every request stands alone, so any API
process behind a load balancer can answer it. State lives in sandbox sessions, named by the
session_id the tools pass, never in the MCP connection. The SDK's session manager runs inside
the application's lifespan (see app.py).
"""

import hmac
from typing import Any

from fastapi import FastAPI
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from service.api.errors import error_response
from service.api.tools import TOOLS, call_tool
from service.settings import Settings

PATH = "/mcp"


def mcp_server(app: FastAPI) -> Server:
    server: Server = Server("sandbox", version=app.version,
                            instructions="Run Python in isolated sandboxes: run_python for one-off "
                            "programs; open_session, run_in_session and close_session to keep "
                            "state between calls.")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [types.Tool(name=tool["name"], description=tool["description"],
                           inputSchema=tool["parameters"]) for tool in TOOLS]

    @server.call_tool()
    async def run_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        output = await call_tool(name, arguments, app.state.services, app.state.sessions)
        content: list[types.ContentBlock] = [types.TextContent(type="text", text=output.text)]
        content += [types.ImageContent(type="image", data=image["base64"],
                                       mimeType=image["media_type"]) for image in output.images]
        return types.CallToolResult(content=content, isError=output.is_error)

    return server


class MCPEndpoint:
    """The ASGI endpoint at /mcp: the API's bearer key (when keys are set), then the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, settings: Settings):
        self.manager = manager
        self.keys = [key.get_secret_value().encode() for key in settings.api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.keys and not self._authorized(scope):
            response = error_response(401, "unauthorized", "a valid 'Authorization: Bearer "
                                      "<key>' header is required",
                                      headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        return scheme.lower() == b"bearer" and any(hmac.compare_digest(given, key)
                                                   for key in self.keys)


def mount(app: FastAPI, settings: Settings) -> StreamableHTTPSessionManager:
    """Serve MCP at /mcp; the returned manager must run (`async with manager.run()`) while the
    application does."""
    manager = StreamableHTTPSessionManager(app=mcp_server(app), stateless=True,
                                           json_response=True)
    app.add_route(PATH, MCPEndpoint(manager, settings), include_in_schema=False)
    return manager
