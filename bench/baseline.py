"""The baseline of the startup scenario: the least a FastAPI service and an arq worker cost.

``uvicorn bench.baseline:app`` serves one route; ``python -m bench.baseline`` runs an
arq worker with one trivial function against ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker
from fastapi import FastAPI

app = FastAPI()


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


async def noop(ctx: dict[str, Any]) -> None:
    return None


def main() -> None:
    settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
    Worker(functions=[noop], redis_settings=settings).run()


if __name__ == "__main__":
    main()
