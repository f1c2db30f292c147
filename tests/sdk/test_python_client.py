"""The Python SDK, generated from ``chatsys openapi`` by openapi-python-client, against a
live server (real HTTP, a real worker, the fake LLM): it type-checks strictly, drives
the task routes, and reads every error answer as its ``Problem``: no exception, no
``None``.

The client is generated when this module is imported (the imports below need it), into
a temporary folder; a generator warning or failure is this module's collection error.
The assertions are on behaviour (statuses, problem fields, ids, task statuses), not on
the names the generator gives response models, so that they hold as the document
gains types.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from arq.worker import Worker
from fastapi import FastAPI
from pydantic import SecretStr

from chatsys.bootstrap.cli import create_key
from chatsys.domain.access.model import Role
from chatsys.infra.settings import AuthSettings, LimitSettings, LLMSettings, Settings
from tests.fakes.openai_compat import FakeOpenAI, RunningFake, run_fake_openai
from tests.sdk.generate import generate_python, type_check, write_document
from tests.streams import serve
from tests.support import eventually


def _generate() -> Path:
    out = Path(tempfile.mkdtemp(prefix="chatsys-sdk-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    generate_python(write_document(out / "openapi.json"), out / "python")
    sys.path.insert(0, str(out / "python"))
    return out / "python"


GENERATED = _generate()

from chatsys_client.api.tasks import (  # noqa: E402  (generated just above)
    tasks_cancel_task,
    tasks_create_task,
    tasks_get_task,
    tasks_list_task_events,
    tasks_list_tasks,
)
from chatsys_client.client import AuthenticatedClient  # noqa: E402
from chatsys_client.models.problem import Problem  # noqa: E402
from chatsys_client.models.task_create import TaskCreate  # noqa: E402
from chatsys_client.types import Response, Unset  # noqa: E402

MODEL = "openai/gpt-4o-mini"
VIEWER_REQUESTS = 3  # a viewer key's burst: the next request is the rate limit's 429
T = TypeVar("T")


@pytest.fixture
def llm_server() -> Iterator[RunningFake]:
    with run_fake_openai() as running:
        yield running


@pytest.fixture
def fake(llm_server: RunningFake) -> FakeOpenAI:
    return llm_server.fake


@pytest.fixture
def settings(settings: Settings, llm_server: RunningFake) -> Settings:
    settings.auth = AuthSettings(enabled=True, cache_seconds=5)
    settings.limits = LimitSettings(enabled=True, viewer_requests=VIEWER_REQUESTS)
    settings.llm = LLMSettings(
        CHATSYS_MODEL=MODEL,
        api_base=llm_server.base_url,
        api_key=SecretStr("sk-test-key"),
        num_retries=0,
        timeout=30,
        cooldown_seconds=0,
    )
    return settings


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as host:
        yield f"http://{host}"


async def client_for(settings: Settings, base_url: str, role: Role) -> AuthenticatedClient:
    _, key = await create_key(settings, name=f"sdk {role.value}", role=role, subject="dana")
    return sdk_client(base_url, key)


def sdk_client(base_url: str, token: str) -> AuthenticatedClient:
    # An undocumented status raises: every answer must be one the document declares.
    return AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def ok(answer: Response[Problem | T], status: int) -> T:
    """The parsed success body of an answer that must have this status."""
    assert answer.status_code == status, answer.content
    assert answer.parsed is not None, answer.content
    assert not isinstance(answer.parsed, Problem), answer.parsed
    return answer.parsed


def problem(answer: Response[Problem | T], status: int, path: str) -> Problem:
    """The answer parsed into the Problem model, with the fields every problem carries."""
    assert answer.status_code == status, answer.content
    found = answer.parsed
    assert isinstance(found, Problem), (answer.content, found)
    assert found.status == status
    assert found.type_.startswith("urn:chatsys:problem:"), found.type_
    assert found.title
    assert found.detail
    assert found.instance == path
    assert found.request_id == answer.headers["x-request-id"]
    return found


async def status_of(client: AuthenticatedClient, task_id: uuid.UUID) -> str:
    task = ok(await tasks_get_task.asyncio_detailed(task_id, client=client), 200)
    assert task.id == task_id
    return str(task.status)


async def wait_status(client: AuthenticatedClient, task_id: uuid.UUID, wanted: str) -> None:
    async def reached() -> bool:
        now = await status_of(client, task_id)
        assert now == wanted, f"task {task_id} is {now}"
        return True

    await eventually(reached, within=30)


async def submit(client: AuthenticatedClient, text: str) -> uuid.UUID:
    made = await tasks_create_task.asyncio_detailed(client=client, body=TaskCreate(input_=text))
    task = ok(made, 202)
    assert str(task.status) == "queued"
    assert made.headers["location"] == f"/v1/tasks/{task.id}"
    return task.id


def test_the_generated_client_type_checks_strictly() -> None:
    report = type_check(GENERATED, __name__)
    assert report.startswith("Success: no issues found"), report


async def test_create_get_list_events_and_cancel(
    settings: Settings, base_url: str, worker: Worker, fake: FakeOpenAI
) -> None:
    async with await client_for(settings, base_url, Role.MEMBER) as member:
        first = await submit(member, "hello there")
        await wait_status(member, first, "succeeded")

        after, seqs, types = 0, list[int](), list[str]()
        for _ in range(50):  # the log, two events a page
            page = ok(
                await tasks_list_task_events.asyncio_detailed(
                    first, client=member, after=after, limit=2
                ),
                200,
            )
            seqs += [event.seq for event in page.items]
            types += [str(event.type_) for event in page.items]
            after = page.last_seq
            if page.done:
                break
        assert page.done
        assert len(seqs) > 2
        assert seqs == list(range(1, len(seqs) + 1))
        assert (types[0], types[-1]) == ("task.created", "task.succeeded")

        second = await submit(member, "hello again")
        third = await submit(member, "and once more")
        seen: list[uuid.UUID] = []
        cursor: str | None = None
        for _ in range(3):  # three tasks, two a page, newest first
            listed = ok(
                await tasks_list_tasks.asyncio_detailed(client=member, limit=2, cursor=cursor),
                200,
            )
            seen += [summary.id for summary in listed.items]
            cursor = listed.next_cursor if isinstance(listed.next_cursor, str) else None
            if cursor is None:
                break
        assert seen == [third, second, first]

        await wait_status(member, second, "succeeded")
        await wait_status(member, third, "succeeded")
        fake.latency = 60.0  # the next task's model call is held: it stays running
        slow = await submit(member, "a slow one")
        await wait_status(member, slow, "running")
        cancelled = ok(await tasks_cancel_task.asyncio_detailed(slow, client=member), 200)
        assert cancelled.id == slow
        assert cancelled.cancel_requested or str(cancelled.status) == "cancelled"
        await wait_status(member, slow, "cancelled")

        again = await tasks_cancel_task.asyncio_detailed(slow, client=member)
        assert "cancelled" in problem(again, 409, f"/v1/tasks/{slow}/cancel").detail
        finished = await tasks_cancel_task.asyncio_detailed(first, client=member)
        assert "succeeded" in problem(finished, 409, f"/v1/tasks/{first}/cancel").detail


async def test_every_error_answer_parses_into_the_problem_model(
    settings: Settings, base_url: str
) -> None:
    member = await client_for(settings, base_url, Role.MEMBER)
    viewer = await client_for(settings, base_url, Role.VIEWER)
    reader = await client_for(settings, base_url, Role.VIEWER)  # spends its allowance
    stranger = sdk_client(base_url, "csk_not-a-key")
    missing = uuid.uuid4()
    async with member, viewer, reader, stranger:
        # 422: a body and parameters the server refuses, each part named.
        bad = await tasks_create_task.asyncio_detailed(
            client=member, body=TaskCreate(input_="NUL \x00 inside")
        )
        refused = problem(bad, 422, "/v1/tasks")
        assert isinstance(refused.errors, list)
        assert [e.location for e in refused.errors] == ["body.input"]
        refused = problem(
            await tasks_list_tasks.asyncio_detailed(client=member, limit=0), 422, "/v1/tasks"
        )
        assert isinstance(refused.errors, list)
        assert [e.location for e in refused.errors] == ["query.limit"]

        # 404: no such task, for each task route.
        path = f"/v1/tasks/{missing}"
        answer = await tasks_get_task.asyncio_detailed(missing, client=member)
        not_found = problem(answer, 404, path)
        assert str(missing) in not_found.detail
        assert isinstance(not_found.errors, Unset)  # left out, not null
        answer = await tasks_cancel_task.asyncio_detailed(missing, client=member)
        problem(answer, 404, f"{path}/cancel")
        events = await tasks_list_task_events.asyncio_detailed(missing, client=member)
        problem(events, 404, f"{path}/events")

        # 409: an Idempotency-Key reused with another body (the same body replays).
        made = await tasks_create_task.asyncio_detailed(
            client=member, body=TaskCreate(input_="once"), idempotency_key="sdk-1"
        )
        replay = await tasks_create_task.asyncio_detailed(
            client=member, body=TaskCreate(input_="once"), idempotency_key="sdk-1"
        )
        assert ok(replay, 202).id == ok(made, 202).id
        assert replay.headers["idempotent-replayed"] == "true"
        clash = await tasks_create_task.asyncio_detailed(
            client=member, body=TaskCreate(input_="twice"), idempotency_key="sdk-1"
        )
        assert "Idempotency-Key" in problem(clash, 409, "/v1/tasks").detail

        # 401: a key the server does not know; 403: a viewer may not submit.
        answer = await tasks_get_task.asyncio_detailed(missing, client=stranger)
        problem(answer, 401, path)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        denied = await tasks_create_task.asyncio_detailed(
            client=viewer, body=TaskCreate(input_="may I?")
        )
        problem(denied, 403, "/v1/tasks")

        # 429: past the viewer's allowance, with Retry-After.
        for _ in range(VIEWER_REQUESTS):
            ok(await tasks_list_tasks.asyncio_detailed(client=reader), 200)
        limited = await tasks_list_tasks.asyncio_detailed(client=reader)
        assert "too many requests" in problem(limited, 429, "/v1/tasks").detail
        assert int(limited.headers["retry-after"]) >= 1
