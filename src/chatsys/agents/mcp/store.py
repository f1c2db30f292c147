"""Where servers registered through the API and tool pins are kept, shared by every
process (the Redis adapter is in ``chatsys.infra``); an in-memory one for one process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class McpStore(Protocol):
    """Every change bumps ``version``, so a process reloads only when something changed."""

    async def version(self) -> int: ...

    async def servers(self) -> dict[str, dict[str, Any]]: ...

    async def put_server(self, name: str, definition: Mapping[str, Any]) -> None: ...

    async def delete_server(self, name: str) -> bool: ...

    async def pins(self) -> dict[str, str]: ...

    async def pin_first(self, key: str, digest: str) -> str:
        """Pin ``digest`` unless a pin exists; returns the pin in force."""
        ...

    async def set_pin(self, key: str, digest: str) -> None: ...


class MemoryMcpStore:
    def __init__(self) -> None:
        self._version = 0
        self._servers: dict[str, dict[str, Any]] = {}
        self._pins: dict[str, str] = {}

    async def version(self) -> int:
        return self._version

    async def servers(self) -> dict[str, dict[str, Any]]:
        return dict(self._servers)

    async def put_server(self, name: str, definition: Mapping[str, Any]) -> None:
        self._servers[name] = dict(definition)
        self._version += 1

    async def delete_server(self, name: str) -> bool:
        found = self._servers.pop(name, None) is not None
        self._version += 1
        return found

    async def pins(self) -> dict[str, str]:
        return dict(self._pins)

    async def pin_first(self, key: str, digest: str) -> str:
        return self._pins.setdefault(key, digest)

    async def set_pin(self, key: str, digest: str) -> None:
        self._pins[key] = digest
        self._version += 1
