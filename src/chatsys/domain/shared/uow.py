"""The unit of work: one transaction, which the use case owns.

Each feature declares the unit of work its use cases need (``TasksUnitOfWork``,
``ConversationsUnitOfWork``, ...) as this protocol plus the repositories they
touch; the SQL unit of work in ``chatsys.infra.db`` provides all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, TypeVar


class UnitOfWork(Protocol):
    """One transaction. Nothing is saved unless ``commit`` is called; repositories
    never commit."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


U_co = TypeVar("U_co", bound=UnitOfWork, covariant=True)

Factory = Callable[[], U_co]
"""Opens a new unit of work, e.g. ``Factory[TasksUnitOfWork]``."""
