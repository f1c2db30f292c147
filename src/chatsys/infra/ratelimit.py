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
import time
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis

from chatsys.domain.access.model import Principal, Role
from chatsys.domain.access.ports import RateDecision
from chatsys.domain.tasks.model import Priority
from chatsys.infra.redis import KEY_PREFIX

# KEYS[1]: the client's key. ARGV: emission interval (ms), period (ms), cost (tokens).
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
local new_tat = tat + interval * tonumber(ARGV[3])
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now, 0}
"""


LEASE_SECONDS = 1.0


class _Lease:
    __slots__ = ("expires", "remaining", "reset_after", "tokens")

    def __init__(self, tokens: int, remaining: int, reset_after: float, expires: float) -> None:
        self.tokens = tokens
        self.remaining = remaining
        self.reset_after = reset_after
        self.expires = expires


class RedisRateLimiter:
    """GCRA in Redis, with small leases: a process takes up to ``limit // 50`` tokens
    (at most 20) in one round trip and hands them out for up to a second. Tokens are
    only ever taken from the shared bucket, so the limit is never exceeded across
    processes; a lease left unused only admits a little less. Small limits (under
    100 per period) lease one token at a time: exact, one round trip per request."""

    def __init__(self, redis: Redis, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._redis = redis
        self._script = redis.register_script(_GCRA)
        self._leases: dict[str, _Lease] = {}
        self._lease_seconds = lease_seconds

    async def hit(self, key: str, *, limit: int, period: float) -> RateDecision:
        now = time.monotonic()
        lease = self._leases.get(key)
        if lease is not None and lease.tokens > 0 and lease.expires > now:
            lease.tokens -= 1
            return RateDecision(True, limit, lease.remaining + lease.tokens, lease.reset_after, 0)
        size = max(1, min(limit // 50, 20))
        decision = await self._take(key, limit, period, size)
        if not decision.allowed and size > 1:
            size = 1  # near the limit: one token may still be there
            decision = await self._take(key, limit, period, size)
        if decision.allowed and size > 1:
            if len(self._leases) > 10_000:
                self._leases.clear()
            self._leases[key] = _Lease(
                size - 1, decision.remaining, decision.reset_after, now + self._lease_seconds
            )
            return RateDecision(True, limit, decision.remaining + size - 1, decision.reset_after, 0)
        return decision

    async def _take(self, key: str, limit: int, period: float, cost: int) -> RateDecision:
        period_ms = period * 1000
        interval = period_ms / limit
        allowed, remaining, reset_ms, retry_ms = await self._script(
            keys=[f"{KEY_PREFIX}rl:{key}"], args=[interval, period_ms, cost]
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
    so the key itself never appears in a URL or an access log. A ticket opens one
    stream: the first connection spends it (GETDEL, so two racing connections cannot
    both win), within ``ttl`` seconds, and only while its key is not revoked. A URL
    that leaks (a proxy's log, a browser's history) is worth nothing once used; a
    client that reconnects takes a new ticket."""

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
            "default_priority": principal.default_priority.value,
        }
        await self._redis.set(self._name(ticket), orjson.dumps(body), px=int(self.ttl * 1000))
        return ticket

    async def redeem(self, ticket: str) -> Principal | None:
        if not ticket.startswith("cst_") or len(ticket) > 100:
            return None
        raw = await self._redis.getdel(self._name(ticket))
        if raw is None:
            return None
        body = orjson.loads(raw)
        key_id = UUID(body["key_id"]) if body.get("key_id") else None
        priority = Priority(body.get("default_priority", Priority.NORMAL))
        return Principal(body["subject"], Role(body["role"]), key_id, priority)
