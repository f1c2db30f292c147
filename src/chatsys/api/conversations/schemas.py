"""Request and response models of conversation messages."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from chatsys.api.pagination import PageOut
from chatsys.api.tasks.schemas import TaskOptions
from chatsys.api.text import NonBlankText
from chatsys.domain.conversations.ports import StoredMessage


class MessageCreate(TaskOptions):
    content: NonBlankText = Field(
        description="the user's message; it starts a task in the conversation"
    )


class MessageOut(BaseModel):
    id: UUID
    role: str
    content: str
    agent: str | None
    task_id: UUID | None
    created_at: datetime

    @classmethod
    def of(cls, message: StoredMessage) -> MessageOut:
        return cls(
            id=message.id,
            role=message.role.value,
            content=message.content,
            agent=message.agent,
            task_id=message.task_id,
            created_at=message.created_at,
        )


class MessagePageOut(PageOut[MessageOut]):
    """A page of a conversation's messages, oldest first."""
