"""Baselines for the benchmark scenarios: the least a FastAPI service and an arq worker cost.

``uvicorn bench.baseline:app``: ``GET /readyz`` answers at once; ``POST /insert`` does
one asyncpg INSERT (table created at start-up) when ``BENCH_DATABASE_URL`` is set.
``python -m bench.baseline``: an arq worker with one trivial function.
``python -m bench.baseline stamp``: an arq worker on ``BENCH_QUEUE`` polling every
``BENCH_POLL_DELAY`` seconds, whose job records how long after its enqueue it started.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from arq.connections import RedisSettings
from arq.worker import Worker, func
from fastapi import FastAPI, Request
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url is None:
        yield
        return
    pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_items (id bigserial PRIMARY KEY, input text NOT NULL)"
    )
    app.state.pool = pool
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    input: str


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/insert", status_code=201)
async def insert(item: Item, request: Request) -> dict[str, int]:
    new_id = await request.app.state.pool.fetchval(
        "INSERT INTO bench_items (input) VALUES ($1) RETURNING id", item.input
    )
    return {"id": int(new_id)}


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def stamp(ctx: dict[str, Any], enqueued_at: float) -> None:
    lag = time.time() - enqueued_at
    await ctx["redis"].rpush(f"bench:{os.environ['BENCH_QUEUE']}:lags", str(lag))


def main() -> None:
    settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
    if sys.argv[1:] == ["stamp"]:
        Worker(
            functions=[func(stamp, name="stamp")],
            redis_settings=settings,
            queue_name=os.environ["BENCH_QUEUE"],
            poll_delay=float(os.environ["BENCH_POLL_DELAY"]),
        ).run()
    else:
        Worker(functions=[noop], redis_settings=settings).run()


if __name__ == "__main__":
    main()
