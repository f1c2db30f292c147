"""What the mcp routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.mcp.ports import McpServers

mcp = Provider[McpServers]("mcp")
McpServersDep = Annotated[McpServers, Depends(mcp)]
