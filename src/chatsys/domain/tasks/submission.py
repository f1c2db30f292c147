"""Submitting tasks, and getting them to the worker pool without losing any."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from chatsys.domain.access.model import AuditEntry, Role
from chatsys.domain.conversations.model import MessageRole
from chatsys.domain.conversations.ports import StoredMessage
from chatsys.domain.planning.planner import Planner
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.errors import (
    Conflict,
    DuplicateRequest,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
)
from chatsys.domain.shared.idempotency import IdempotencyKey
from chatsys.domain.shared.text import Title
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.model import EventType, Priority, Task, TaskStatus
from chatsys.domain.tasks.ports import JobQueue
from chatsys.domain.tasks.uow import TasksUnitOfWork
from chatsys.domain.webhooks.model import new_secret
from chatsys.domain.webhooks.ports import UrlGuard
from chatsys.domain.webhooks.urls import check_address, parse_webhook_url

DEFAULT_MAX_INPUT_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class TaskRequest:
    input: str
    conversation_id: UUID | None = None
    title: str | None = None
    agents: Sequence[str] | None = None
    plan: Sequence[Mapping[str, Any]] | None = None
    model: str | None = None
    webhook_url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    priority: Priority | None = None  # None: the submitter's default (its API key's)

    def fingerprint(self) -> str:
        """A hash of everything the client sent, to recognise a replay under the same key.

        ``priority`` counts as sent, not as resolved: a replay of a body without one
        matches even after its key's default changed."""
        body = {
            "input": self.input,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "title": self.title,
            "agents": list(self.agents) if self.agents is not None else None,
            "plan": [dict(s) for s in self.plan] if self.plan is not None else None,
            "model": self.model,
            "webhook_url": self.webhook_url,
            "metadata": dict(self.metadata),
        }
        if self.priority is not None:  # hashes of bodies without one stay as they were
            body["priority"] = self.priority.value
        raw = json.dumps(body, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()


class Dispatcher:
    """Hands outbox entries to the job queue.

    Rules: a task's job is recorded in the outbox in the same transaction that
    makes it due, stamped as dispatched; ``dispatch`` enqueues it right after
    the commit (fast path, no second transaction); if the enqueue fails the
    stamp is removed and ``relay`` sends it within seconds; if the process dies
    between commit and enqueue (or Redis loses the job), ``relay`` sends it
    again once the stamp is older than the lease while the task is still
    queued. Enqueueing twice is harmless: one job id per entry, and the
    database lets one runner claim a task.
    """

    def __init__(self, uow: Factory[TasksUnitOfWork], queue: JobQueue) -> None:
        self._uow = uow
        self._queue = queue

    async def dispatch(
        self, entry_id: int, task_id: UUID, *, priority: Priority = Priority.NORMAL
    ) -> bool:
        try:
            await self._queue.enqueue_run(task_id, entry_id, priority=priority)
        except Exception:  # let the relay send it soon; the caller may log
            try:
                async with self._uow() as uow:
                    await uow.outbox.mark_undispatched([entry_id])
                    await uow.commit()
            except Exception:  # the lease still gets it re-sent, later
                return False
            return False
        return True

    async def relay(self, *, older_than: float = 2.0, lease: float = 60.0, limit: int = 100) -> int:
        sent: list[int] = []
        async with self._uow() as uow:
            due = await uow.outbox.pending(older_than=older_than, lease=lease, limit=limit)
            for entry_id, task_id, priority in due:
                await self._queue.enqueue_run(task_id, entry_id, priority=priority)
                sent.append(entry_id)
            await uow.outbox.mark_dispatched(sent)
            await uow.commit()
        return len(sent)


class LiteralUrlGuard:
    """The URL rules and, for a literal IP host, the address rules; no DNS. The composition
    root gives ``SubmitTask`` the adapter that also resolves host names."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self._allow_private = allow_private

    async def check(self, url: str) -> None:
        target = parse_webhook_url(url)
        if target.address is not None:
            check_address(target.address, allow_private=self._allow_private)


class SubmitTask:
    """Create a task and queue it.

    Rules:
    - the input must not be blank nor longer than ``max_input_bytes`` (UTF-8);
    - ``agents`` and ``plan`` are exclusive, and are validated now (unknown
      role, cycle, missing dependency: an error for the client, not a failed
      task); ``model`` must be one the service is configured with;
    - a conversation must exist and belong to the caller; the input is recorded
      as the user's message in it;
    - the caller's role decides its quota (active tasks, tokens per minute), checked
      in the transaction that stores the task; a role with no quota may not submit;
    - an ``Idempotency-Key`` (1 to 255 printable ASCII characters, the owner's, shared by
      the two routes that submit: tasks and conversation messages) seen before with the
      same body returns the same task; with a different body it is a conflict;
    - the task, its ``task.created`` event and its outbox entry are written in
      one transaction; the job is enqueued only after the commit;
    - a ``webhook_url`` must pass the URL and address rules (``url_guard``); the task
      gets its own signing secret for it, shown in the answer to the submission;
    - a request without a ``priority`` gets the caller's ``default_priority`` (its API
      key's); an explicit one wins, whatever the key's default (no key is capped).
    """

    def __init__(
        self,
        uow: Factory[TasksUnitOfWork],
        clock: Clock,
        planner: Planner,
        dispatcher: Dispatcher,
        *,
        quotas: Mapping[Role, TaskQuota],
        allowed_models: Sequence[str] = (),
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
        url_guard: UrlGuard | None = None,
    ) -> None:
        self._uow = uow
        self._quotas = dict(quotas)
        self._url_guard = url_guard or LiteralUrlGuard()
        self._clock = clock
        self._planner = planner
        self._dispatcher = dispatcher
        self._allowed_models = tuple(allowed_models)
        self._max_input_bytes = max_input_bytes

    def _validate(self, request: TaskRequest) -> dict[str, Any]:
        if not request.input.strip():
            raise InvalidInput("input must not be empty")
        size = len(request.input.encode())
        if size > self._max_input_bytes:
            raise InvalidInput(f"input is {size} bytes; the limit is {self._max_input_bytes} bytes")
        if request.agents is not None and request.plan is not None:
            raise InvalidInput("give either agents or plan, not both")
        options: dict[str, Any] = {}
        if request.agents is not None:
            self._planner.plan_for_agents(request.agents)
            options["agents"] = list(request.agents)
        if request.plan is not None:
            options["plan"] = self._planner.custom(request.plan).as_dict()
        if request.model is not None:
            if request.model not in self._allowed_models:
                raise InvalidInput(
                    f"model '{request.model}' is not configured; configured: "
                    + ", ".join(self._allowed_models)
                )
            options["model"] = request.model
        return options

    async def execute(
        self,
        *,
        owner: str,
        request: TaskRequest,
        idempotency_key: str | None = None,
        role: Role,
        actor: str = "system",
        default_priority: Priority = Priority.NORMAL,
    ) -> tuple[Task, bool]:
        """Returns the task and whether it was created now (False: an idempotent replay).

        ``role`` picks the quota; a role the quota table does not name may not submit
        (the table fails closed, so a new role has no unlimited default)."""
        quota = self._quotas.get(role)
        if quota is None:
            raise Forbidden(f"the {role.value} role may not submit tasks")
        if idempotency_key is not None:
            IdempotencyKey(idempotency_key)
        options = self._validate(request)
        if request.webhook_url is not None:
            await self._url_guard.check(request.webhook_url)
        fingerprint = request.fingerprint()
        now = self._clock.now()
        task = Task(
            id=uuid4(),
            owner=owner,
            input=request.input,
            status=TaskStatus.QUEUED,
            created_at=now,
            conversation_id=request.conversation_id,
            title=Title(request.title).value if request.title is not None else None,
            webhook_url=request.webhook_url,
            webhook_secret=new_secret() if request.webhook_url is not None else None,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            options=options,
            metadata=dict(request.metadata),
            priority=request.priority if request.priority is not None else default_priority,
        )
        if idempotency_key is not None:
            earlier = await self._replay(owner, idempotency_key, fingerprint)
            if earlier is not None:
                return earlier, False
        try:
            entry = await self._store(task, owner, now, actor, quota)
        except DuplicateRequest:  # a concurrent request with the same key won the race
            assert idempotency_key is not None
            earlier = await self._replay(owner, idempotency_key, fingerprint)
            if earlier is None:
                raise
            return earlier, False
        await self._dispatcher.dispatch(entry, task.id, priority=task.priority)
        return task, True

    async def _replay(self, owner: str, key: str, fingerprint: str) -> Task | None:
        async with self._uow() as uow:
            earlier = await uow.tasks.by_idempotency_key(owner, key)
        if earlier is not None and earlier.request_hash != fingerprint:
            raise Conflict("this Idempotency-Key was used with a different request body")
        return earlier

    async def _store(
        self, task: Task, owner: str, now: datetime, actor: str, quota: TaskQuota
    ) -> int:
        async with self._uow() as uow:
            await quota.check(uow, owner)
            if task.conversation_id is not None:
                found = await uow.conversations.get(task.conversation_id, owner=owner)
                if found is None:
                    raise NotFound(f"conversation {task.conversation_id} does not exist")
            created = {"status": task.status.value, "conversation_id": _str(task.conversation_id)}
            audit = AuditEntry(
                "task.create",
                actor,
                target=f"task:{task.id}",
                task_id=task.id,
                details={"conversation_id": _str(task.conversation_id)},
            )
            # The task, its task.created event, its outbox entry and the audit entry: one
            # write (one round trip on Postgres).
            entry = await uow.tasks.add_queued(task, (EventType.TASK_CREATED, created), audit)
            if task.conversation_id is not None:
                await uow.messages.add(
                    StoredMessage(
                        uuid4(), task.conversation_id, MessageRole.USER, task.input, now, task.id
                    )
                )
            await uow.commit()
        return entry


@dataclass(frozen=True, slots=True)
class TaskQuota:
    """Per-owner limits checked when a task is submitted (0: no limit)."""

    max_active: int = 0  # queued, running or waiting at once
    tokens_per_minute: int = 0

    async def check(self, uow: TasksUnitOfWork, owner: str) -> None:
        if self.max_active:
            active = await uow.tasks.count_active(owner)
            if active >= self.max_active:
                raise TooManyRequests(
                    f"{active} of your tasks are queued or running; the limit is "
                    f"{self.max_active}. Wait for one to finish.",
                    retry_after=5,
                )
        if self.tokens_per_minute:
            used = await uow.tasks.tokens_since(owner, 60)
            if used >= self.tokens_per_minute:
                raise TooManyRequests(
                    f"your tasks used {used} tokens in the last minute; the limit is "
                    f"{self.tokens_per_minute} per minute",
                    retry_after=60,
                )


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)
