"""Reading tasks and their event logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from chatsys.domain.shared.errors import NotFound
from chatsys.domain.shared.pagination import Page, cut_page, decode_cursor
from chatsys.domain.shared.uow import Factory
from chatsys.domain.tasks.model import EventType, Task, TaskEvent, TaskStatus
from chatsys.domain.tasks.uow import TasksUnitOfWork


class GetTask:
    """One task of ``owner``, with its steps; someone else's is reported as not found."""

    def __init__(self, uow: Factory[TasksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(self, task_id: UUID, *, owner: str | None) -> Task:
        async with self._uow() as uow:
            task = await uow.tasks.get(task_id, owner=owner)
        if task is None:
            raise NotFound(f"task {task_id} does not exist")
        return task


class ListTasks:
    """Newest first, keyset-paginated, optionally filtered by status and conversation."""

    def __init__(self, uow: Factory[TasksUnitOfWork]) -> None:
        self._uow = uow

    async def execute(
        self,
        *,
        owner: str | None,
        limit: int,
        cursor: str | None,
        status: TaskStatus | None = None,
        conversation_id: UUID | None = None,
    ) -> Page[Task]:
        before = decode_cursor(cursor) if cursor else None
        async with self._uow() as uow:
            rows = await uow.tasks.list_for_owner(
                owner,
                limit=limit + 1,
                before=before,
                status=status,
                conversation_id=conversation_id,
            )
        return cut_page(rows, limit)


@dataclass(frozen=True, slots=True)
class EventPage:
    items: Sequence[TaskEvent]
    last_seq: int
    done: bool  # the task is finished and every event up to its last one is in the page


class ListTaskEvents:
    """The task's event log after ``after``, in ``seq`` order, ``limit`` at a time."""

    def __init__(self, uow: Factory[TasksUnitOfWork]) -> None:
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
