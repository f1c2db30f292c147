"""MCP servers: their state and tools, registration, tool approval, debug calls.

Anyone with a key may look; registering, removing, accepting and calling are for
admins (a server is a command run on the API host)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from chatsys.api.access.deps import admin
from chatsys.api.mcp.deps import McpServersDep
from chatsys.api.mcp.schemas import (
    McpServerCreate,
    McpServerListOut,
    McpServerOut,
    McpToolCall,
    McpToolListOut,
    McpToolOut,
    McpToolResultOut,
)

router = APIRouter(prefix="/v1/mcp/servers", tags=["mcp"])

ServerName = Annotated[str, Path(min_length=1, max_length=64)]
ToolName = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("", response_model=McpServerListOut, summary="MCP servers with their state")
async def list_servers(
    mcp: McpServersDep,
) -> McpServerListOut:
    return McpServerListOut(items=[McpServerOut.of(s) for s in await mcp.servers()])


@router.post(
    "",
    dependencies=[Depends(admin)],
    status_code=status.HTTP_201_CREATED,
    response_model=McpServerOut,
    summary="Register an MCP server (started at once, so a bad command shows as failed)",
)
async def create_server(
    body: McpServerCreate, mcp: McpServersDep, response: Response
) -> McpServerOut:
    info = await mcp.add(body.model_dump(exclude_none=True))
    response.headers["Location"] = f"/v1/mcp/servers/{info.name}"
    return McpServerOut.of(info)


@router.delete(
    "/{name}",
    dependencies=[Depends(admin)],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a server registered through the API (settings ones: 409)",
)
async def delete_server(
    name: ServerName,
    mcp: McpServersDep,
) -> Response:
    await mcp.remove(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{name}/tools",
    response_model=McpToolListOut,
    summary="The server's tools (it is started if needed), with their approval status",
)
async def list_tools(
    name: ServerName,
    mcp: McpServersDep,
) -> McpToolListOut:
    return McpToolListOut(items=[McpToolOut.of(t) for t in await mcp.tools(name)])


@router.post(
    "/{name}/tools/{tool}/accept",
    dependencies=[Depends(admin)],
    response_model=McpToolOut,
    summary="Accept the tool's current definition (ends its quarantine)",
)
async def accept_tool(
    name: ServerName,
    tool: ToolName,
    mcp: McpServersDep,
) -> McpToolOut:
    return McpToolOut.of(await mcp.accept(name, tool))


@router.post(
    "/{name}/tools/{tool}/call",
    dependencies=[Depends(admin)],
    response_model=McpToolResultOut,
    summary="Call a tool directly (for debugging); a tool error is a result, not an HTTP error",
)
async def call_tool(
    name: ServerName,
    tool: ToolName,
    body: McpToolCall,
    mcp: McpServersDep,
) -> McpToolResultOut:
    result = await mcp.call(name, tool, body.arguments, workspace=body.workspace)
    return McpToolResultOut(content=result.content, is_error=result.is_error)
