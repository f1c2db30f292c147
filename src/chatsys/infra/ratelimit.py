"""Rate limits shared by every API process, and stream tickets, in Redis.

The limiter is GCRA (the generic cell rate algorithm, as in redis-cell or
throttled): one key per client holding its "theoretical arrival time", updated
by one Lua script, so a check is one round trip, exact across processes, and
yields the numbers the ``RateLimit-*`` headers need. (The ``limits`` package's
async Redis backend would bring a second Redis client and pool beside
redis-py's; a 20-line script does the job in the pool we have.)
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis

from chatsys.domain.identity import Principal, Role
from chatsys.domain.ports import RateDecision
from chatsys.infra.redis import KEY_PREFIX

# KEYS[1]: the client's key. ARGV: emission interval (ms), period (ms).
# Returns {allowed, remaining, reset_after_ms, retry_after_ms}. Time is Redis' own,
# so API processes with skewed clocks still agree.
_GCRA = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now, 0}
"""


class RedisRateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)

    async def hit(self, key: str, *, limit: int, period: float) -> RateDecision:
        period_ms = period * 1000
        interval = period_ms / limit
        allowed, remaining, reset_ms, retry_ms = await self._script(
            keys=[f"{KEY_PREFIX}rl:{key}"], args=[interval, period_ms]
        )
        return RateDecision(
            allowed=bool(allowed),
            limit=limit,
            remaining=max(0, int(remaining)),
            reset_after=float(reset_ms) / 1000,
            retry_after=float(retry_ms) / 1000,
        )


class RedisTickets:
    """Short-lived stream tickets: a key's holder trades it for a ticket that can go in
    a URL (EventSource and browsers' WebSocket cannot send an Authorization header),
    so the key itself never appears in a URL or an access log. A ticket is valid for
    ``ttl`` seconds, any number of times (EventSource reconnects with the same URL),
    and only while its key is not revoked."""

    def __init__(self, redis: Redis, *, ttl: float) -> None:
        self._redis = redis
        self.ttl = ttl

    @staticmethod
    def _name(ticket: str) -> str:
        return f"{KEY_PREFIX}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"

    async def issue(self, principal: Principal) -> str:
        ticket = "cst_" + secrets.token_urlsafe(32)
        body: dict[str, Any] = {
            "subject": principal.subject,
            "role": principal.role.value,
            "key_id": str(principal.key_id) if principal.key_id else None,
        }
        await self._redis.set(self._name(ticket), orjson.dumps(body), px=int(self.ttl * 1000))
        return ticket

    async def resolve(self, ticket: str) -> Principal | None:
        if not ticket.startswith("cst_") or len(ticket) > 100:
            return None
        raw = await self._redis.get(self._name(ticket))
        if raw is None:
            return None
        body = orjson.loads(raw)
        key_id = UUID(body["key_id"]) if body.get("key_id") else None
        return Principal(body["subject"], Role(body["role"]), key_id)
