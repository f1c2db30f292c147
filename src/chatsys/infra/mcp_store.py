"""MCP servers registered through the API, and tool pins, in Redis: every API and worker
process sees the same ones (a version counter tells them when to reload)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from typing import Any, cast

from redis.asyncio import Redis

from chatsys.infra.redis import KEY_PREFIX

SERVERS_KEY = f"{KEY_PREFIX}mcp:servers"  # hash: name -> definition (JSON)
PINS_KEY = f"{KEY_PREFIX}mcp:pins"  # hash: server/tool -> sha256 of description + schema
VERSION_KEY = f"{KEY_PREFIX}mcp:version"


class RedisMcpStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def version(self) -> int:
        value = await self._redis.get(VERSION_KEY)
        return int(value or 0)

    async def servers(self) -> dict[str, dict[str, Any]]:
        raw = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(SERVERS_KEY))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def put_server(self, name: str, definition: Mapping[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(SERVERS_KEY, name, json.dumps(dict(definition)))
            pipe.incr(VERSION_KEY)
            await pipe.execute()

    async def delete_server(self, name: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(SERVERS_KEY, name)
            pipe.incr(VERSION_KEY)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def pins(self) -> dict[str, str]:
        raw = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(PINS_KEY))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def pin_first(self, key: str, digest: str) -> str:
        await cast(Awaitable[bool], self._redis.hsetnx(PINS_KEY, key, digest))
        value = await cast(Awaitable[bytes | None], self._redis.hget(PINS_KEY, key))
        return _text(value) if value is not None else digest

    async def set_pin(self, key: str, digest: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(PINS_KEY, key, digest)
            pipe.incr(VERSION_KEY)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
