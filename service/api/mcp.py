"""The tools of /v1/tools over the Model Context Protocol, at /mcp (streamable HTTP).

Built on the official SDK's low-level server, stateless: every request stands alone, so any API
process behind a load balancer can answer it. State lives in sandbox sessions, named by the
session_id the tools pass, never in the MCP connection. The SDK's session manager runs inside
the application's lifespan (see app.py).
"""

from typing import Any

from fastapi import FastAPI
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from service.api.agent_tools import TOOLS, Progress, call_tool
from service.api.auth import bearer
from service.api.errors import error_response
from service.tenants import Tenant, TenantDirectory

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
        # The HTTP request the call came in, whose tenant MCPEndpoint found from its key.
        tenant: Tenant = server.request_context.request.state.tenant  # type: ignore[union-attr]
        services = app.state.services.for_tenant(tenant, app.state.tenants.limits(tenant))
        output = await call_tool(name, arguments, services, app.state.sessions,
                                 progress_reporter(server))
        content: list[types.ContentBlock] = [types.TextContent(type="text", text=output.text)]
        content += [types.ImageContent(type="image", data=image["base64"],
                                       mimeType=image["media_type"]) for image in output.images]
        return types.CallToolResult(content=content, isError=output.is_error)

    return server


def progress_reporter(server: Server) -> Progress | None:
    """Where the call's output goes as it is printed: progress notifications, one per piece
    (their message the text), if the client asked for progress (a progressToken)."""
    context = server.request_context
    token = context.meta.progressToken if context.meta else None
    if token is None:
        return None
    sent = 0

    async def report(text: str) -> None:
        nonlocal sent
        sent += 1
        await context.session.send_progress_notification(
            token, sent, message=text, related_request_id=str(context.request_id))

    return report


class MCPEndpoint:
    """The ASGI endpoint at /mcp: the API's bearer key names the tenant, then the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, tenants: TenantDirectory):
        self.manager = manager
        self.tenants = tenants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        tenant = self.tenants.authenticate(bearer(header))
        if tenant is None:
            response = error_response(401, "unauthorized", "a valid 'Authorization: Bearer "
                                      "<key>' header is required",
                                      headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.manager.handle_request(scope, receive, send)


def mount(app: FastAPI, tenants: TenantDirectory) -> StreamableHTTPSessionManager:
    """Serve MCP at /mcp; the returned manager must run (`async with manager.run()`) while the
    application does."""
    # Answers as event streams (not bare JSON): a call's progress notifications go ahead of it.
    manager = StreamableHTTPSessionManager(app=mcp_server(app), stateless=True,
                                           json_response=False)
    app.add_route(PATH, MCPEndpoint(manager, tenants), include_in_schema=False)
    return manager
