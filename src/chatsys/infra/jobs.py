"""arq job functions. Each takes arq's ``ctx``, filled by the worker's start-up hook."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def ping(ctx: dict[str, Any]) -> dict[str, Any]:
    """Round trip through the queue: proves a worker consumes jobs and reaches Postgres."""
    engine: AsyncEngine = ctx["engine"]
    async with engine.connect() as conn:
        one = await conn.scalar(text("SELECT 1"))
    return {
        "worker_id": ctx["worker_id"],
        "pid": os.getpid(),
        "database": "ok" if one == 1 else "unexpected answer",
        "job_try": ctx.get("job_try"),
    }
