"""Ports: what the domain needs from the outside, as ``typing.Protocol``s.

Adapters in ``chatsys.infra`` and ``chatsys.agents`` implement them; only
``chatsys.bootstrap`` knows which adapter fills which port.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from chatsys.domain.health import ProbeResult
from chatsys.domain.model import Conversation


class HealthProbe(Protocol):
    """Checks one component the service depends on."""

    name: str

    async def check(self) -> ProbeResult: ...


class ConversationRepository(Protocol):
    """Conversations, scoped to their owner."""

    async def add(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: UUID, *, owner: str) -> Conversation | None: ...

    async def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        before: tuple[datetime, UUID] | None,
    ) -> Sequence[Conversation]: ...


class UnitOfWork(Protocol):
    """One transaction. Nothing is saved unless ``commit`` is called."""

    @property
    def conversations(self) -> ConversationRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


JsonDict = dict[str, Any]
