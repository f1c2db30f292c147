"""Routes get the one use case they call, filled per app by the composition root; the
app can be wired with fakes through the same entry point (``create_app(wire)``)."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

import chatsys
from chatsys.api.access.deps import access_services
from chatsys.api.access.middleware import AccessConfig, AccessServices
from chatsys.api.app import Started, create_app, providers_of, route_dependants
from chatsys.api.nlu import deps as nlu_api
from chatsys.api.tasks import deps as tasks_api
from chatsys.api.wiring import Provider, Wiring
from chatsys.bootstrap.api import build_app
from chatsys.domain.nlu import Analysis
from chatsys.domain.nlu.analyze_text import AnalyzeText
from chatsys.domain.shared.errors import DomainError, LLMError
from chatsys.domain.tasks.model import Task, TaskStatus
from chatsys.domain.tasks.queries import GetTask
from chatsys.domain.tasks.submission import SubmitTask, TaskRequest
from chatsys.infra.settings import Settings


def _dependency_calls(dependant: Dependant) -> list[Callable[..., Any]]:
    calls: list[Callable[..., Any]] = []
    for sub in dependant.dependencies:
        if sub.call is not None:
            calls.append(sub.call)
        calls += _dependency_calls(sub)
    return calls


def _routes(app: FastAPI) -> list[tuple[str, Dependant]]:
    return route_dependants(app.routes)


def _use_case_fields(kind: type) -> list[str]:
    """The attributes of ``kind`` that are themselves use cases (have ``execute``)."""
    hints = inspect.get_annotations(kind, eval_str=True) if not is_dataclass(kind) else {
        f.name: f.type for f in fields(kind)
    }  # fmt: skip
    return [
        name
        for name, hint in hints.items()
        if isinstance(hint, type) and callable(getattr(hint, "execute", None))
    ]


def test_no_route_depends_on_a_bag_of_services() -> None:
    app = build_app(Settings(_env_file=None))
    routes = _routes(app)
    assert len(routes) > 30
    providers = 0
    for path, dependant in routes:
        for call in _dependency_calls(dependant):
            if isinstance(call, Provider):
                providers += 1
                (provided,) = get_args(call.__orig_class__)  # type: ignore[attr-defined]
                assert provided is not Wiring, f"{path}: depends on the whole wiring"
                origin = getattr(provided, "__origin__", provided)
                if isinstance(origin, type):
                    bag = _use_case_fields(origin)
                    assert len(bag) < 2, f"{path}: {call.name} is a bag of use cases: {bag}"
            else:
                source = inspect.getsource(call)
                assert "app.state" not in source, f"{path}: {call.__qualname__} reads app.state"
    assert providers > 30


def test_no_source_reaches_into_a_services_bag() -> None:
    root = Path(chatsys.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "state.services" in path.read_text()
    ]
    assert offenders == []


# -- the same entry point, with fakes ---------------------------------------------------


def _fake_app(values: dict[Provider[Any], Any]) -> FastAPI:
    """The real app and routes, wired with ``values``; every other provider a sentinel."""

    @contextlib.asynccontextmanager
    async def wire(wiring: Wiring) -> AsyncIterator[Started]:
        config = AccessConfig(auth_enabled=False, limits_enabled=False)
        wiring.provide(access_services, AccessServices(config, None, None, None, None))  # type: ignore[arg-type]
        for provider, value in values.items():
            wiring.provide(provider, value)
        for provider in set().union(*(providers_of(d) for _, d in _routes(app))):
            if provider not in values:
                wiring.provide(provider, object())
        yield Started(going_away=lambda: None)

    app = create_app(wire, version="test")
    return app


@contextlib.asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_a_provider_nothing_fills_stops_the_start_naming_it() -> None:
    @contextlib.asynccontextmanager
    async def wire(wiring: Wiring) -> AsyncIterator[Started]:
        yield Started(going_away=lambda: None)

    app = create_app(wire, version="test")
    with pytest.raises(RuntimeError, match=r"provides no .*submit_task"):
        async with app.router.lifespan_context(app):
            pass


class _FailingAnalysis(AnalyzeText):
    def __init__(self, error: DomainError) -> None:
        self._error = error

    async def execute(
        self, text: str, *, owner: str | None, conversation_id: UUID | None
    ) -> Analysis:
        raise self._error


async def test_a_provider_failure_is_a_502_naming_the_provider() -> None:
    """Defect 4: an LLMError used to fall through the table and answer 400."""
    failing = _FailingAnalysis(LLMError("RateLimitError (429): slow down", retryable=True,
                                        provider="openai"))  # fmt: skip
    async with _client(_fake_app({nlu_api.analyze: failing})) as client:
        answer = await client.post("/v1/analyze", json={"text": "hello"})
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == "urn:chatsys:problem:provider-error:openai"
    assert body["provider"] == "openai"
    assert body["retryable"] is True
    assert "slow down" in body["detail"]


async def test_an_unmapped_domain_error_is_a_500_that_shows_nothing_of_it() -> None:
    class Surprise(DomainError):
        pass

    failing = _FailingAnalysis(Surprise("internal detail 0xdeadbeef"))
    async with _client(_fake_app({nlu_api.analyze: failing})) as client:
        answer = await client.post("/v1/analyze", json={"text": "hello"})
    assert answer.status_code == 500
    assert "0xdeadbeef" not in answer.text
    assert answer.json()["type"] == "urn:chatsys:problem:internal-error"


class _ReplayingSubmit(SubmitTask):
    """Answers every submission as an idempotent replay of ``task``."""

    def __init__(self, task: Task) -> None:
        self._task = task

    async def execute(
        self,
        *,
        owner: str,
        request: TaskRequest,
        idempotency_key: str | None = None,
        role: Any = None,
        actor: str = "system",
        default_priority: Any = None,
    ) -> tuple[Task, bool]:
        return self._task, False


class _SharedGetTask(GetTask):
    """Returns the same object every time, as a cache would."""

    def __init__(self, task: Task) -> None:
        self._task = task

    async def execute(self, task_id: UUID, *, owner: str | None) -> Task:
        return self._task


async def test_an_idempotent_replay_does_not_write_the_secret_into_the_stored_task() -> None:
    """Defect 6: the replay used to set ``webhook_secret`` on the object ``GetTask``
    returned, so whoever shared it (a cache, the next reader) saw the secret."""
    now = datetime.now(UTC)
    first = Task(uuid4(), "local", "hi", TaskStatus.QUEUED, now,
                 webhook_url="https://example.com/hook", webhook_secret="whsec_first")  # fmt: skip
    shared = Task(first.id, "local", "hi", TaskStatus.RUNNING, now,
                  webhook_url="https://example.com/hook")  # fmt: skip
    app = _fake_app({tasks_api.submit_task: _ReplayingSubmit(first),
                     tasks_api.get_task: _SharedGetTask(shared)})  # fmt: skip
    async with _client(app) as client:
        answer = await client.post("/v1/tasks", json={"input": "hi"},
                                   headers={"Idempotency-Key": "k1"})  # fmt: skip
    assert answer.status_code == 202
    assert answer.headers["Idempotent-Replayed"] == "true"
    assert answer.json()["webhook_secret"] == "whsec_first"  # the first answer's secret
    assert answer.json()["status"] == "running"  # the task as it is now
    assert shared.webhook_secret is None
