"""Conversations and the roles of their messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    AGENT = "agent"
    TOOL = "tool"
    SYSTEM = "system"


@dataclass(slots=True)
class Conversation:
    """A thread of messages and the tasks started from it."""

    id: UUID
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
