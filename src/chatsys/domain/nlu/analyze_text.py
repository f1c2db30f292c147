"""Analysing a text without creating a task."""

from __future__ import annotations

from uuid import UUID

from chatsys.domain.conversations.ports import ConversationsUnitOfWork
from chatsys.domain.nlu import Analysis, RuleBasedAnalyzer
from chatsys.domain.shared.errors import NotFound
from chatsys.domain.shared.uow import Factory


class AnalyzeText:
    """Analyse a text (with its conversation's earlier messages) without creating a task."""

    def __init__(self, uow: Factory[ConversationsUnitOfWork], analyzer: RuleBasedAnalyzer) -> None:
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
