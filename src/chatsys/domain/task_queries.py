"""Reading tasks and their event logs, cancelling them, analysing text without a task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from chatsys.domain.callbacks import Callbacks, finish_task
from chatsys.domain.conversations import cut_page, decode_cursor
from chatsys.domain.errors import Conflict, NotFound
from chatsys.domain.identity import AuditEntry
from chatsys.domain.model import TaskStatus
from chatsys.domain.nlu import Analysis, RuleBasedAnalyzer
from chatsys.domain.ports import Clock, StoredMessage, UnitOfWorkFactory
from chatsys.domain.tasks import EventType, Task, TaskEvent


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: Sequence[Task]
    next_cursor: str | None


class GetTask:
    """One task of ``owner``, with its steps; someone else's is reported as not found."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID, *, owner: str | None) -> Task:
        async with self._uow() as uow:
            task = await uow.tasks.get(task_id, owner=owner)
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        return task


class ListTasks:
    """Newest first, keyset-paginated, optionally filtered by status and conversation."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(
        self,
        *,
        owner: str | None,
        limit: int,
        cursor: str | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> TaskPage:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.tasks.list_for_owner(
                owner,
                limit=limit + 1,
                before=before,
                status=status,
                conversation_id=conversation_id,
            )
        return TaskPage(*cut_page(rows, limit))


@dataclass(frozen=True, slots=True)
class EventPage:
    items: Sequence[TaskEvent]
    last_seq: int
    done: bool  # the task is finished and every event up to its last one is in the page


class ListTaskEvents:
    """The task's event log after ``after``, in ``seq`` order, ``limit`` at a time."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(
        self, task_id: UUID, *, owner: str | None, after: int, limit: int
    ) -> EventPage:
        async with self._uow() as uow:
            task = await uow.tasks.get(task_id, owner=owner)
            if task is None:
                raise NotFound(f"task {task_id} does not exist")
            events = await uow.events.after(task_id, after, limit=limit)
        last = events[-1].seq if events else after
        finished = bool(events) and events[-1].type in {
            EventType.TASK_SUCCEEDED,
            EventType.TASK_FAILED,
            EventType.TASK_CANCELLED,
        }
        return EventPage(events, last, finished)


class CancelTask:
    """Cancel a task.

    Rules: a queued task is cancelled at once; a running one is flagged and its
    runner stops it at its next heartbeat (well within 2 s); a finished task
    cannot be cancelled (conflict). A task cancelled here calls its webhooks.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, callbacks: Callbacks) -> None:
        self._uow = uow
        self._clock = clock
        self._callbacks = callbacks

    async def execute(self, task_id: UUID, *, owner: str | None, actor: str = "system") -> Task:
        deliveries: list[UUID] = []
        async with self._uow() as uow:
            owned = await uow.tasks.get(task_id, owner=owner)
            if owned is None:
                raise NotFound(f"task {task_id} does not exist")
            task = await uow.tasks.lock(task_id)
            assert task is not None
            if task.status.is_terminal:
                raise Conflict(f"task {task_id} is already {task.status.value}")
            if task.status is TaskStatus.QUEUED:
                task.finished_at = self._clock.now()
                deliveries = await finish_task(
                    uow,
                    task,
                    TaskStatus.CANCELLED,
                    EventType.TASK_CANCELLED,
                    {"reason": "cancelled before it started"},
                    callbacks=self._callbacks,
                )
            else:
                await uow.tasks.request_cancel(task_id)
                task.cancel_requested = True
            await uow.audit.add(
                AuditEntry(
                    "task.cancel",
                    actor,
                    target=f"task:{task_id}",
                    task_id=task_id,
                    details={"status": task.status.value},
                )
            )
            await uow.commit()
        await self._callbacks.dispatch(deliveries)
        task.steps = owned.steps
        return task


class AnalyzeText:
    """Analyse a text (with its conversation's earlier messages) without creating a task."""

    def __init__(self, uow: UnitOfWorkFactory, analyzer: RuleBasedAnalyzer) -> None:
        self._uow = uow
        self._analyzer = analyzer

    async def execute(
        self, text: str, *, owner: str | None, conversation_id: UUID | None
    ) -> Analysis:
        history: list[str] = []
        if conversation_id is not None:
            async with self._uow() as uow:
                if await uow.conversations.get(conversation_id, owner=owner) is None:
                    raise NotFound(f"conversation {conversation_id} does not exist")
                messages = await uow.messages.recent(conversation_id, limit=20)
            history = [m.content for m in messages if m.role.value == "user"]
        return self._analyzer.analyze(text, history)


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: Sequence[StoredMessage]
    next_cursor: str | None


class ListMessages:
    """A conversation's messages, oldest first, keyset-paginated."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def execute(
        self, conversation_id: UUID, *, owner: str | None, limit: int, cursor: str | None
    ) -> MessagePage:
        after = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            if await uow.conversations.get(conversation_id, owner=owner) is None:
                raise NotFound(f"conversation {conversation_id} does not exist")
            rows = await uow.messages.page(conversation_id, limit=limit + 1, after=after)
        return MessagePage(*cut_page(rows, limit))
