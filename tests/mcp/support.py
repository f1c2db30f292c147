"""Helpers for the MCP tests: an inotify watch (was a file opened?) and the managers."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Any

from chatsys.agents.mcp.config import McpDefaults, ServerConfig
from chatsys.agents.mcp.manager import McpManager
from chatsys.agents.mcp.workspace import SERVER_NAME, Workspaces, build_workspace_server

IN_ACCESS = 0x001
IN_MODIFY = 0x002
IN_OPEN = 0x020
IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")


class OpenWatch:
    """Counts opens, reads, writes and creations in watched folders (Linux inotify)."""

    def __init__(self, *folders: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for folder in folders:
            mask = IN_OPEN | IN_ACCESS | IN_MODIFY | IN_CREATE
            if self._libc.inotify_add_watch(self._fd, str(folder).encode(), mask) < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        self.events: list[tuple[int, str]] = []

    def drain(self) -> list[tuple[int, str]]:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return self.events
            offset = 0
            while offset < len(data):
                _, mask, _, size = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
                self.events.append((mask, name.decode()))
                offset += _EVENT.size + size

    def close(self) -> None:
        os.close(self._fd)


def workspace_manager(root: Path, *servers: ServerConfig, **defaults: Any) -> McpManager:
    config = ServerConfig(name=SERVER_NAME, transport="builtin", roles=["operator"])
    return McpManager(
        list(servers),
        McpDefaults(**defaults),
        builtins=[(config, build_workspace_server(Workspaces(root)))],
    )
