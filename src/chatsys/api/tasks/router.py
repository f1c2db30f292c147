"""Tasks: submit, read, list, cancel, and their event log."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status

from chatsys.api.access.deps import ReaderDep, WriterDep
from chatsys.api.idempotency import IdempotencyKeyHeader, TaskIdempotencyKeyHeader, once, replayed
from chatsys.api.problems import problem_response
from chatsys.api.streaming.deps import FollowTaskDep, StreamConfigDep
from chatsys.api.streaming.document import SSE_EVENTS, SSE_EXAMPLE
from chatsys.api.streaming.sse import EventStreamResponse
from chatsys.api.tasks.deps import (
    CancelTaskDep,
    GetTaskDep,
    ListTaskEventsDep,
    ListTasksDep,
    SubmitTaskDep,
)
from chatsys.api.tasks.events import EventOut, EventPageOut
from chatsys.api.tasks.schemas import (
    SEQ_MAX,
    TaskCreate,
    TaskCreatedOut,
    TaskOut,
    TaskPageOut,
    TaskStatusName,
    TaskSummary,
)
from chatsys.api.text import LINE, TEXT
from chatsys.domain.shared.errors import InvalidInput
from chatsys.domain.shared.idempotency import Replayed
from chatsys.domain.tasks.model import TaskStatus

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskCreatedOut,
    summary="Submit a task; it runs in the background",
    responses={404: problem_response(404, "No such conversation (`conversation_id`)")},
)
async def create_task(
    body: TaskCreate,
    get_task: GetTaskDep,
    submit_task: SubmitTaskDep,
    principal: WriterDep,
    response: Response,
    idempotency_key: TaskIdempotencyKeyHeader = None,
) -> TaskCreatedOut:
    request = body.to_request(body.input, body.conversation_id)
    task, created = await submit_task.execute(
        owner=principal.subject,
        request=request,
        idempotency_key=idempotency_key,
        actor=principal.actor,
        role=principal.role,
        default_priority=principal.default_priority,
    )
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    if not created:  # the task as it is now, with the secret the first answer showed
        response.headers["Idempotent-Replayed"] = "true"
        now = await get_task.execute(task.id, owner=principal.subject)
        return TaskCreatedOut.created(now, webhook_secret=task.webhook_secret)
    return TaskCreatedOut.created(task, webhook_secret=task.webhook_secret)


@router.get("", response_model=TaskPageOut, summary="List tasks, newest first")
async def list_tasks(
    list_tasks: ListTasksDep,
    owner: ReaderDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200), LINE] = None,
    status_filter: Annotated[TaskStatusName | None, Query(alias="status")] = None,
    conversation_id: UUID | None = None,
) -> TaskPageOut:
    page = await list_tasks.execute(
        owner=owner,
        limit=limit,
        cursor=cursor,
        status=TaskStatus(status_filter) if status_filter else None,
        conversation_id=conversation_id,
    )
    return TaskPageOut.of(page, TaskSummary.of)


@router.get("/{task_id}", response_model=TaskOut, summary="Get a task with its steps")
async def get_task(task_id: UUID, get_task: GetTaskDep, owner: ReaderDep) -> TaskOut:
    return TaskOut.of(await get_task.execute(task_id, owner=owner))


@router.post(
    "/{task_id}/cancel",
    response_model=TaskOut,
    summary="Cancel a task (409 when it has already finished)",
    responses={
        409: problem_response(
            409,
            "The task has already finished, or the Idempotency-Key was used with another request",
        )
    },
)
async def cancel_task(
    task_id: UUID,
    cancel_task: CancelTaskDep,
    principal: WriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskOut | Response:
    try:
        cancelled = await cancel_task.execute(
            task_id, owner=principal.scope, actor=principal.actor,
            once=once(principal, idempotency_key, TaskOut.of),
        )  # fmt: skip
    except Replayed as replay:
        return replayed(replay, 200)
    return TaskOut.of(cancelled)


SSE_DOC = """
With `Accept: text/event-stream`: a live Server-Sent Events stream instead of a page.
Each event has `id: <seq>`, `event: <type>` and the JSON frame
`{task_id, seq, type, data, ts}` (the `TaskEvent` schema, as in the page) as `data`.
It starts after `Last-Event-ID` (or `after`), replays the log, follows live, and ends
after the terminal event; `: keep-alive` comments come while idle. `204` when the task
is finished and nothing is left after the given position (EventSource then stops
reconnecting). A client that reads too slowly gets an `overflow` event and the stream
ends; a shutting-down server sends `reconnect`. Both carry `StreamControl`
(`{reason, after}`: the `after` to resume from). The `x-sse-events` list of the
`text/event-stream` content names each message. The same events come over WebSocket
(`/v1/tasks/{task_id}/stream`, `/v1/ws`): see the document's `x-websockets`.
"""


@router.get(
    "/{task_id}/events",
    response_model=EventPageOut,
    summary="The task's event log: a page of JSON, or a live SSE stream",
    description=SSE_DOC,
    responses={
        200: {
            "description": "A page of the log; with `Accept: text/event-stream`, the stream",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "Server-Sent Events: the messages of `x-sse-events`",
                    },
                    "x-sse-events": SSE_EVENTS,
                    "example": SSE_EXAMPLE,
                }
            },
        },
        204: {"description": "SSE: the task is finished and nothing follows `after`"},
    },
)
async def list_task_events(
    task_id: UUID,
    follow_task: FollowTaskDep,
    list_events: ListTaskEventsDep,
    stream: StreamConfigDep,
    owner: ReaderDep,
    after: Annotated[
        int, Query(ge=0, le=SEQ_MAX, description="return events with seq > after")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size (JSON only)")] = 200,
    accept: Annotated[str, Header(), TEXT] = "application/json",
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="SSE: resume after this seq"),
        LINE,
    ] = None,
) -> EventPageOut | Response:
    if "text/event-stream" in accept:
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                raise InvalidInput(
                    f"Last-Event-ID must be an event seq (a whole number >= 0), "
                    f"not {last_event_id!r}"
                )
            after = int(last_event_id)
        follow = follow_task
        await follow.check(task_id, owner=owner)
        if await follow.is_exhausted(task_id, after):
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return EventStreamResponse(follow.open(task_id, after=after), stream, after=after)
    page = await list_events.execute(task_id, owner=owner, after=after, limit=limit)
    return EventPageOut(
        items=[EventOut.of(e) for e in page.items], last_seq=page.last_seq, done=page.done
    )
