"""MCP servers: their state and tools, registration, tool approval, debug calls.

Anyone with a key may look; registering, removing, accepting and calling are for
admins (a server is a command run on the API host), and each of these is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from chatsys.api.access.deps import AdminDep
from chatsys.api.mcp.deps import (
    AcceptMcpToolDep,
    AddMcpServerDep,
    CallMcpToolDep,
    McpServersDep,
    RemoveMcpServerDep,
)
from chatsys.api.mcp.schemas import (
    McpServerCreate,
    McpServerListOut,
    McpServerOut,
    McpToolCall,
    McpToolListOut,
    McpToolOut,
    McpToolResultOut,
)
from chatsys.api.problems import problem_response, problems
from chatsys.api.text import LINE

router = APIRouter(prefix="/v1/mcp/servers", tags=["mcp"])

ServerName = Annotated[str, Path(min_length=1, max_length=64), LINE]
ToolName = Annotated[str, Path(min_length=1, max_length=128), LINE]


@router.get("", response_model=McpServerListOut, summary="MCP servers with their state")
async def list_servers(
    mcp: McpServersDep,
) -> McpServerListOut:
    return McpServerListOut(items=[McpServerOut.of(s) for s in await mcp.servers()])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=McpServerOut,
    summary="Register an MCP server (started at once, so a bad command shows as failed)",
    responses={409: problem_response(409, "A server of this name exists already")},
)
async def create_server(
    body: McpServerCreate, add_server: AddMcpServerDep, principal: AdminDep, response: Response
) -> McpServerOut:
    info = await add_server.execute(body.model_dump(exclude_none=True), actor=principal.actor)
    response.headers["Location"] = f"/v1/mcp/servers/{info.name}"
    return McpServerOut.of(info)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a server registered through the API (settings ones: 409)",
    responses={409: problem_response(409, "The server is defined in the settings")},
)
async def delete_server(
    name: ServerName, remove_server: RemoveMcpServerDep, principal: AdminDep
) -> Response:
    await remove_server.execute(name, actor=principal.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{name}/tools",
    response_model=McpToolListOut,
    summary="The server's tools (it is started if needed), with their approval status",
    responses=problems(503),
)
async def list_tools(
    name: ServerName,
    mcp: McpServersDep,
) -> McpToolListOut:
    return McpToolListOut(items=[McpToolOut.of(t) for t in await mcp.tools(name)])


@router.post(
    "/{name}/tools/{tool}/accept",
    response_model=McpToolOut,
    summary="Accept the tool's current definition (ends its quarantine)",
    responses=problems(503),
)
async def accept_tool(
    name: ServerName, tool: ToolName, accept: AcceptMcpToolDep, principal: AdminDep
) -> McpToolOut:
    return McpToolOut.of(await accept.execute(name, tool, actor=principal.actor))


@router.post(
    "/{name}/tools/{tool}/call",
    response_model=McpToolResultOut,
    summary="Call a tool directly (for debugging); a tool error is a result, not an HTTP error",
    responses=problems(503),
)
async def call_tool(
    name: ServerName,
    tool: ToolName,
    body: McpToolCall,
    call: CallMcpToolDep,
    principal: AdminDep,
) -> McpToolResultOut:
    result = await call.execute(
        name, tool, body.arguments, actor=principal.actor, workspace=body.workspace
    )
    return McpToolResultOut(content=result.content, is_error=result.is_error)
