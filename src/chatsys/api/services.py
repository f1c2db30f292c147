"""What the API needs from the rest of the system: domain use cases, built by bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatsys.domain.conversations import GetConversation, ListConversations, StartConversation
from chatsys.domain.health import CheckReadiness


@dataclass(frozen=True, slots=True)
class ApiServices:
    readiness: CheckReadiness
    llm: dict[str, Any]
    start_conversation: StartConversation
    get_conversation: GetConversation
    list_conversations: ListConversations
