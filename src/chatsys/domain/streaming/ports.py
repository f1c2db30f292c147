"""The live feed of committed events, and what the stream use cases read."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from chatsys.domain.conversations.ports import ConversationRepository
from chatsys.domain.shared.uow import UnitOfWork
from chatsys.domain.tasks.model import TaskEvent
from chatsys.domain.tasks.ports import EventLog, TaskRepository


class LiveSignal(StrEnum):
    """What a live subscription says besides events."""

    RESYNC = "resync"  # live delivery may have missed events: read the log
    OVERFLOW = "overflow"  # the subscriber fell too far behind; its buffer is gone
    GOING_AWAY = "going_away"  # this process is shutting down


class LiveSubscription(Protocol):
    async def next(self, wait: float) -> TaskEvent | LiveSignal | None:
        """The next live event or signal; None when ``wait`` seconds pass first."""
        ...

    async def ended(self) -> LiveSignal:
        """Wait until the subscription ends (OVERFLOW or GOING_AWAY) and say why."""
        ...


class LiveFeed(Protocol):
    """Events as they are committed, from any process (at most once: the log has the rest).

    Entering a subscription returns only once it is active, so an event committed
    after that is delivered to it.
    """

    def task(
        self, task_id: UUID, *, buffer: int
    ) -> AbstractAsyncContextManager[LiveSubscription]: ...

    def conversation(
        self, conversation_id: UUID, *, buffer: int
    ) -> AbstractAsyncContextManager[LiveSubscription]: ...


class StreamingUnitOfWork(UnitOfWork, Protocol):
    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def events(self) -> EventLog: ...
