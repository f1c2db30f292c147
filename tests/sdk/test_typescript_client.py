"""The TypeScript client (openapi-typescript types from ``chatsys openapi``, openapi-fetch
calls): the program in tests/sdk/ts/src, compiled with ``tsc --strict`` against types
generated from this checkout's document, run with node against a live server.

It needs node and ``npm ci`` in tests/sdk/ts (``make sdk-ts``, which .ci/run runs
before this module); without them it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import AuthSettings, Settings
from tests.sdk.generate import (
    TS,
    TS_BIN,
    compile_typescript,
    generate_typescript,
    write_document,
)
from tests.streams import serve

NODE = shutil.which("node")
MISSING = "0b9e6c4e-8a1f-4a8e-9a57-4d1c3f0e2b71"  # the task id the program asks for
pytestmark = pytest.mark.skipif(
    NODE is None or not (TS_BIN / "tsc").exists(),
    reason="needs node and `npm ci` in tests/sdk/ts (make sdk-ts)",
)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generate_typescript(write_document(tmp_path_factory.mktemp("sdk-ts") / "openapi.json"))
    compile_typescript(TS / "dist")  # beside its node_modules, which node resolves from
    return TS / "dist" / "src" / "main.js"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    return settings


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as host:
        yield f"http://{host}"


async def test_the_typescript_program_against_a_live_server(
    program: Path, settings: Settings, base_url: str
) -> None:
    _, key = await create_key(settings, name="sdk ts", role=Role.MEMBER, subject="dana")
    assert NODE is not None
    node = await asyncio.create_subprocess_exec(
        NODE,
        str(program),
        env={"CHATSYS_URL": base_url, "CHATSYS_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # in this loop's time: the server answering it runs in this loop
    out, err = await asyncio.wait_for(node.communicate(), 60)
    assert node.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])

    task_id = seen["created"]["id"]
    assert seen["created"]["status"] == 202
    assert seen["created"]["location"] == f"/v1/tasks/{task_id}"
    assert seen["got"] == {"id": task_id, "status": "queued"}  # no worker: it waits
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        assert (await http.get(f"/v1/tasks/{task_id}")).json()["input"] == "hello from TypeScript"

    missing = seen["missing"]
    assert missing["status"] == 404
    assert missing["content_type"] == "application/problem+json"
    assert missing["type"].startswith("urn:chatsys:problem:")
    assert missing["title"] == "Not Found"
    assert MISSING in missing["detail"]
    assert missing["instance"] == f"/v1/tasks/{MISSING}"
    assert missing["request_id"] == missing["header_request_id"]
    assert missing["request_id"]
    assert missing["has_errors"] is False
    assert seen["refused"] == {"status": 422, "locations": ["body.input"]}
