"""The unit tests' composition root: the real use cases wired to the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from chatsys.agents.agent import RoleAgent
from chatsys.domain.access.model import Role
from chatsys.domain.approvals.decisions import DecideApproval
from chatsys.domain.nlu.llm_analyzer import RulesTaskAnalyzer, TaskAnalyzer
from chatsys.domain.planning.executor import PlanExecutor
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.ending import Callbacks
from chatsys.domain.tasks.model import Task
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.running import RunTask
from chatsys.domain.tasks.submission import Dispatcher, SubmitTask, TaskQuota, TaskRequest
from chatsys.domain.webhooks.model import RetryPolicy
from tests.support import eventually
from tests.unit.fakes import (
    FakeClock,
    FakeDatabase,
    FakeJobQueue,
    FakeNudge,
    FakeTools,
    FakeUrlGuard,
    ScriptedLLM,
)

STALE_AFTER = 10.0
MODELS = ("fake-model",)


def render(task: Task) -> dict[str, Any]:
    """A stand-in for the API's view of a task (``TaskRenderer``)."""
    result = None if task.result is None else task.result.as_dict()
    return {"id": str(task.id), "status": task.status.value, "result": result}


async def no_sleep(_: float) -> None:
    return None


UNLIMITED = {Role.ADMIN: TaskQuota(), Role.MEMBER: TaskQuota()}


class World:
    def __init__(self, *, retry: RetryPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.db = FakeDatabase(self.clock)
        self.jobs = FakeJobQueue()
        self.nudge = FakeNudge()
        self.url_guard = FakeUrlGuard()
        self.planner = Planner()
        self.dispatcher = Dispatcher(self.db.uow, self.jobs)
        self.callbacks = Callbacks(render, self.nudge, retry)
        self.submit = SubmitTask(
            self.db.uow,
            self.clock,
            self.planner,
            self.dispatcher,
            quotas=UNLIMITED,
            allowed_models=MODELS,
            url_guard=self.url_guard,
        )
        self.cancel = CancelTask(self.db.uow, self.clock, self.callbacks)
        self.sweeper = RequeueStale(
            self.db.uow, self.dispatcher, self.clock, callbacks=self.callbacks,
            stale_after=STALE_AFTER,
        )  # fmt: skip
        self.decide = DecideApproval(self.db.uow, self.clock)

    def runner(
        self,
        worker_id: str,
        llm: ScriptedLLM | None = None,
        tools: FakeTools | None = None,
        *,
        analyzer: TaskAnalyzer | None = None,
        **options: Any,
    ) -> RunTask:
        agents = RoleAgent(llm or ScriptedLLM(), tools or FakeTools())
        settings: dict[str, Any] = {
            "heartbeat_interval": 0.01,
            "stale_after": STALE_AFTER,
            "approval_poll": 0.01,
            **options,
        }
        return RunTask(
            self.db.uow,
            self.clock,
            analyzer=analyzer or RulesTaskAnalyzer(),
            planner=self.planner,
            executor=PlanExecutor(agents, sleep=no_sleep),
            dispatcher=self.dispatcher,
            callbacks=self.callbacks,
            worker_id=worker_id,
            **settings,
        )

    async def submitted(
        self, text: str = "Write a haiku about queues", *, owner: str = "ann", **fields: Any
    ) -> UUID:
        task, _ = await self.submit.execute(
            owner=owner, request=TaskRequest(text, **fields), role=Role.MEMBER
        )
        return task.id

    async def submit_with_quota(self, quota: TaskQuota, *, owner: str = "ann") -> Task:
        """Submit as a member whose role's quota is ``quota``."""
        submit = SubmitTask(
            self.db.uow, self.clock, self.planner, self.dispatcher,
            quotas={Role.MEMBER: quota}, allowed_models=MODELS, url_guard=self.url_guard,
        )  # fmt: skip
        task, _ = await submit.execute(
            owner=owner, request=TaskRequest("Summarise the design"), role=Role.MEMBER
        )
        return task

    def task(self, task_id: UUID) -> Task:
        """The task as committed, with its steps."""
        return self.db.committed.task(task_id)

    def events(self, task_id: UUID) -> list[str]:
        return self.db.committed.event_types(task_id)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (up to 5 s) for ``condition`` to hold: work running in other asyncio tasks."""
    await eventually(condition, within=5, every=0.005, message="the condition did not hold")
