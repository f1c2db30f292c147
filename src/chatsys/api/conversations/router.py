"""Conversations: threads of messages and the tasks started from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from chatsys.api.access.deps import ReaderDep, WriterDep
from chatsys.api.conversations.deps import (
    GetConversationDep,
    ListConversationsDep,
    ListMessagesDep,
    StartConversationDep,
)
from chatsys.api.conversations.schemas import MessageCreate, MessageOut, MessagePageOut
from chatsys.api.idempotency import (
    IdempotencyKeyHeader,
    TaskIdempotencyKeyHeader,
    once,
    replayed,
)
from chatsys.api.pagination import PageOut
from chatsys.api.tasks.deps import GetTaskDep, SubmitTaskDep
from chatsys.api.tasks.schemas import TaskCreatedOut
from chatsys.api.text import LINE, JsonObject, NonBlankLineOrNone
from chatsys.domain.conversations.model import Conversation
from chatsys.domain.conversations.use_cases import METADATA_MAX_KEYS
from chatsys.domain.shared.idempotency import Replayed
from chatsys.domain.shared.text import TITLE_MAX

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: NonBlankLineOrNone = Field(
        default=None, max_length=TITLE_MAX, examples=["Payment service"]
    )
    metadata: JsonObject = Field(default_factory=dict, max_length=METADATA_MAX_KEYS)


class ConversationOut(BaseModel):
    id: UUID
    title: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        return cls(
            id=conversation.id,
            title=conversation.title,
            metadata=conversation.metadata,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        )


class ConversationPage(PageOut[ConversationOut]):
    """A page of conversations, newest first."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversationOut,
    summary="Start a conversation",
)
async def create_conversation(
    body: ConversationCreate,
    start_conversation: StartConversationDep,
    principal: WriterDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ConversationOut | Response:
    try:
        conversation = await start_conversation.execute(
            owner=principal.subject, title=body.title, metadata=body.metadata,
            actor=principal.actor, once=once(principal, idempotency_key, ConversationOut.of),
        )  # fmt: skip
    except Replayed as replay:
        return replayed(replay, 201, location=f"/v1/conversations/{replay.answer['id']}")
    response.headers["Location"] = f"/v1/conversations/{conversation.id}"
    return ConversationOut.of(conversation)


@router.get("", response_model=ConversationPage, summary="List conversations, newest first")
async def list_conversations(
    list_conversations: ListConversationsDep,
    owner: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> ConversationPage:
    page = await list_conversations.execute(owner=owner, limit=limit, cursor=cursor)
    return ConversationPage.of(page, ConversationOut.of)


@router.get("/{conversation_id}", response_model=ConversationOut, summary="Get a conversation")
async def get_conversation(
    conversation_id: UUID, get_conversation: GetConversationDep, owner: ReaderDep
) -> ConversationOut:
    return ConversationOut.of(await get_conversation.execute(conversation_id, owner=owner))


@router.get(
    "/{conversation_id}/messages",
    response_model=MessagePageOut,
    summary="The conversation's messages, oldest first",
)
async def list_messages(
    conversation_id: UUID,
    list_messages: ListMessagesDep,
    owner: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
) -> MessagePageOut:
    page = await list_messages.execute(conversation_id, owner=owner, limit=limit, cursor=cursor)
    return MessagePageOut.of(page, MessageOut.of)


@router.post(
    "/{conversation_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskCreatedOut,
    summary="Post a user message: starts a task that sees the earlier messages",
)
async def post_message(
    conversation_id: UUID,
    body: MessageCreate,
    get_task: GetTaskDep,
    submit_task: SubmitTaskDep,
    principal: WriterDep,
    response: Response,
    idempotency_key: TaskIdempotencyKeyHeader = None,
) -> TaskCreatedOut:
    request = body.to_request(body.content, conversation_id)
    task, created = await submit_task.execute(
        owner=principal.subject,
        request=request,
        idempotency_key=idempotency_key,
        actor=principal.actor,
        role=principal.role,
        default_priority=principal.default_priority,
    )
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    if not created:  # as POST /v1/tasks: the task as it is now, and its secret
        response.headers["Idempotent-Replayed"] = "true"
        now = await get_task.execute(task.id, owner=principal.subject)
        return TaskCreatedOut.created(now, webhook_secret=task.webhook_secret)
    return TaskCreatedOut.created(task, webhook_secret=task.webhook_secret)
