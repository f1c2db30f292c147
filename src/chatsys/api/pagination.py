"""The one page schema of every cursor-paginated list (the API's face of ``Page[T]``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Self, TypeVar

from pydantic import BaseModel, Field

from chatsys.domain.shared.pagination import Page

T = TypeVar("T")
D = TypeVar("D")


class PageOut(BaseModel, Generic[T]):
    """Subclass it per list (``class TaskPageOut(PageOut[TaskSummary])``) so that each
    list keeps its own name in the OpenAPI document and the generated SDKs."""

    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )

    @classmethod
    def of(cls, page: Page[D], render: Callable[[D], T]) -> Self:
        return cls(items=[render(item) for item in page.items], next_cursor=page.next_cursor)
