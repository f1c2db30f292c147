"""The built-in workspace: an MCP server of ours whose file tools are confined to a
task's folder (see ``confinement`` for the rules).

One server instance serves every workspace: the folder is chosen by the
``chatsys/workspace`` key of the request's ``_meta``, which the tool invoker
sets from the task (never from the model's arguments). Workspaces live under
one root, one folder per key, created on first use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from chatsys.agents.mcp.confinement import MAX_READ_BYTES, ConfinedFolder, PathRefused

SERVER_NAME = "workspace"
META_KEY = "chatsys/workspace"
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

_PATH = {"type": "string", "description": "a path relative to the workspace, e.g. notes/a.txt"}
TOOLS: dict[str, types.Tool] = {
    tool.name: tool
    for tool in (
        types.Tool(
            name="read_file",
            description="Read a text file from the task's workspace (at most 1 MiB is returned).",
            input_schema={"type": "object", "properties": {"path": _PATH}, "required": ["path"],
                          "additionalProperties": False},
        ),
        types.Tool(
            name="write_file",
            description="Create or replace a text file in the task's workspace (parent folders "
            "are created).",
            input_schema={"type": "object",
                          "properties": {"path": _PATH, "content": {"type": "string"}},
                          "required": ["path", "content"], "additionalProperties": False},
        ),
        types.Tool(
            name="list_dir",
            description="List a folder of the task's workspace (name, type, size).",
            input_schema={"type": "object",
                          "properties": {"path": {**_PATH, "default": "."}},
                          "additionalProperties": False},
        ),
        types.Tool(
            name="stat",
            description="Type, size and modification time of a path in the task's workspace "
            "(symlinks are reported, never followed).",
            input_schema={"type": "object", "properties": {"path": _PATH}, "required": ["path"],
                          "additionalProperties": False},
        ),
    )
}  # fmt: skip


def _text(value: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=value)], is_error=error)


def _string(arguments: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = arguments.get(name, default)
    if not isinstance(value, str):
        raise PathRefused(f"'{name}' must be a string")
    return value


class Workspaces:
    """The folders, one per workspace key, under ``root``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)

    def path_of(self, key: str) -> Path:
        if not _KEY.match(key):
            raise PathRefused("invalid workspace key")
        return self.root / key

    def folder(self, key: str) -> ConfinedFolder:
        return ConfinedFolder(self.path_of(key))

    def run(self, key: str, tool: str, arguments: Mapping[str, Any]) -> str:
        folder = self.folder(key)
        if tool == "read_file":
            data, size = folder.read(_string(arguments, "path"))
            text = data.decode("utf-8", errors="replace")
            if size > MAX_READ_BYTES:
                text += f"\n[truncated: the file has {size} bytes]"
            return text
        if tool == "write_file":
            written = folder.write(
                _string(arguments, "path"), _string(arguments, "content").encode()
            )
            return json.dumps({"path": arguments["path"], "bytes_written": written})
        if tool == "list_dir":
            entries = folder.list(_string(arguments, "path", "."))
            return json.dumps({"entries": [e.as_dict() for e in entries]})
        if tool == "stat":
            return json.dumps(folder.stat(_string(arguments, "path")))
        raise PathRefused(f"unknown tool '{tool}'")


def build_workspace_server(workspaces: Workspaces) -> Server[Any]:
    """The MCP server (low-level API: no logging side effects, schemas as written)."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(TOOLS.values()))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in TOOLS:
            return _text(f"unknown tool '{params.name}'", error=True)
        key = (ctx.meta or {}).get(META_KEY)
        if not isinstance(key, str):
            return _text("this call has no workspace (the task sets one)", error=True)
        arguments = dict(params.arguments or {})
        try:
            result = await anyio.to_thread.run_sync(workspaces.run, key, params.name, arguments)
        except PathRefused as exc:
            return _text(f"refused: {exc}", error=True)
        return _text(result)

    def input_schema(name: str) -> Mapping[str, Any] | None:
        tool = TOOLS.get(name)
        return tool.input_schema if tool else None

    return Server(
        SERVER_NAME,
        version="1",
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
