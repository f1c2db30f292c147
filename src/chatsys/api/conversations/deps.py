"""What the conversations routes ask for: one provider and one ``Annotated`` alias per use case,
filled by ``chatsys.bootstrap.api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chatsys.api.wiring import Provider
from chatsys.domain.conversations.messages import ListMessages
from chatsys.domain.conversations.use_cases import (
    GetConversation,
    ListConversations,
    StartConversation,
)

start_conversation = Provider[StartConversation]("start_conversation")
StartConversationDep = Annotated[StartConversation, Depends(start_conversation)]

get_conversation = Provider[GetConversation]("get_conversation")
GetConversationDep = Annotated[GetConversation, Depends(get_conversation)]

list_conversations = Provider[ListConversations]("list_conversations")
ListConversationsDep = Annotated[ListConversations, Depends(list_conversations)]

list_messages = Provider[ListMessages]("list_messages")
ListMessagesDep = Annotated[ListMessages, Depends(list_messages)]
