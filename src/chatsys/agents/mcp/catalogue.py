"""The MCP tool catalogue: each server's tools as agents see them, and their pins.

Rules:
- a tool is offered as ``server__tool``, a function name models accept (at most
  ``MAX_FUNCTION_NAME`` characters; a tool whose name cannot be one is left out);
- a role sees a server's tools when the server grants it (``roles``), and a
  tool only when it matches the server's ``tools`` patterns;
- tool definitions are pinned: the first time a tool is seen, the hash of
  its description and input schema is stored; a tool whose hash differs from
  its pin is quarantined (not offered, not callable) until an admin accepts it;
- results are text, cut at the server's size cap.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import mcp_types as types
import structlog

from chatsys.agents.mcp.config import ServerConfig, tool_policy
from chatsys.agents.mcp.connection import ServerConnection
from chatsys.agents.mcp.store import McpStore
from chatsys.domain.mcp.ports import McpToolInfo

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(__name__)

SEPARATOR = "__"
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")
MAX_FUNCTION_NAME = 64


def digest(tool: types.Tool) -> str:
    body = {"description": tool.description or "", "input_schema": tool.input_schema}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def qualified_name(server: str, tool: str) -> str | None:
    """``server__tool`` as a function name models accept, or None if it cannot be one."""
    name = f"{server}{SEPARATOR}{_FUNCTION_NAME.sub('_', tool)}"
    return name if len(name) <= MAX_FUNCTION_NAME else None


def role_granted(config: ServerConfig, role: str) -> bool:
    return "*" in config.roles or role in config.roles


def tool_listed(config: ServerConfig, tool: str) -> bool:
    return any(fnmatch.fnmatchcase(tool, pattern) for pattern in config.tools)


def render(result: types.CallToolResult, cap: int) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, {len(block.data)} base64 characters]")
        elif isinstance(block, types.EmbeddedResource):
            inner = block.resource
            text = getattr(inner, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {inner.uri}]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, default=str))
    text = "\n".join(parts)
    if len(text) > cap:
        text = text[:cap] + f"\n[truncated: {len(text) - cap} more characters]"
    return text


@dataclass(frozen=True, slots=True)
class ToolEntry:
    info: McpToolInfo
    tool: types.Tool
    validator: Any


class ToolCatalogue:
    """Each server's tools with their pin status, cached until the server's tool list
    or the pins change; first-seen pins are stored in the shared store."""

    def __init__(self, store: McpStore) -> None:
        self._store = store
        self._pins: dict[str, str] = {}
        self._generation = 0
        self._entries: dict[str, dict[str, ToolEntry]] = {}  # server -> tool -> entry
        self._keys: dict[str, tuple[int, int]] = {}

    def load_pins(self, pins: dict[str, str]) -> None:
        """Take the pins read from the store; every server's entries are rebuilt."""
        self._pins = pins
        self._generation += 1

    def forget(self, server: str) -> None:
        self._entries.pop(server, None)
        self._keys.pop(server, None)

    def cached(self, server: str) -> Mapping[str, ToolEntry]:
        """The entries last built for ``server`` (none when it was never listed)."""
        return self._entries.get(server, {})

    def tool_for(self, server: str, qualified: str) -> str | None:
        """The name on ``server`` of the tool offered as ``qualified``, if listed yet."""
        for tool, entry in self._entries.get(server, {}).items():
            if entry.info.qualified_name == qualified:
                return tool
        return None

    async def entries(self, connection: ServerConnection) -> dict[str, ToolEntry]:
        """The server's tools with their pin status (cached until the list or pins change)."""
        key = (connection.tools_version, self._generation)
        if self._keys.get(connection.name) == key:
            return self._entries[connection.name]
        entries: dict[str, ToolEntry] = {}
        for tool in connection.tools:
            qualified = qualified_name(connection.name, tool.name)
            if qualified is None:
                continue
            hashed = digest(tool)
            pin_key = f"{connection.name}/{tool.name}"
            pin = self._pins.get(pin_key)
            if pin is None:
                pin = self._pins[pin_key] = await self._store.pin_first(pin_key, hashed)
            status = "active" if pin == hashed else "quarantined"
            if status == "quarantined":
                log.warning("chatsys.mcp.tool_quarantined", server=connection.name, tool=tool.name)
            try:
                validator: Any = jsonschema.validators.validator_for(tool.input_schema)(
                    tool.input_schema
                )
            except Exception:  # an unusable schema: the server validates on its own
                validator = None
            info = McpToolInfo(
                connection.name, tool.name, qualified, tool.description or "",
                tool.input_schema, status, hashed,
                tool_policy(connection.config, tool.name).value,
            )  # fmt: skip
            entries[tool.name] = ToolEntry(info, tool, validator)
        self._entries[connection.name] = entries
        self._keys[connection.name] = key
        return entries
