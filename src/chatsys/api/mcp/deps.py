"""What the mcp routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.mcp.changes import AcceptMcpTool, AddMcpServer, CallMcpTool, RemoveMcpServer
from chatsys.domain.mcp.ports import McpServers

mcp = Provider[McpServers]("mcp")
McpServersDep = Annotated[McpServers, Depends(mcp)]

add_mcp_server = Provider[AddMcpServer]("add_mcp_server")
AddMcpServerDep = Annotated[AddMcpServer, Depends(add_mcp_server)]

remove_mcp_server = Provider[RemoveMcpServer]("remove_mcp_server")
RemoveMcpServerDep = Annotated[RemoveMcpServer, Depends(remove_mcp_server)]

accept_mcp_tool = Provider[AcceptMcpTool]("accept_mcp_tool")
AcceptMcpToolDep = Annotated[AcceptMcpTool, Depends(accept_mcp_tool)]

call_mcp_tool = Provider[CallMcpTool]("call_mcp_tool")
CallMcpToolDep = Annotated[CallMcpTool, Depends(call_mcp_tool)]
