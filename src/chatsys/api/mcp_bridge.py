"""``chatsys mcp``: chatsys' own API as MCP tools, so MCP clients can use chatsys.

The tools call the chatsys HTTP API (``api_url``) with httpx; they hold no
state of their own. Served over stdio or streamable HTTP (``/mcp``). Every tool
returns structured content (a typed object, described by the tool's output
schema) besides the same object as JSON text for clients that read only text.
``wait_for_task`` follows the task's SSE event stream (no polling) until the
stream ends after the task's terminal event, then reads the task.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

import anyio
import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatsys import __version__
from chatsys.domain.tasks.model import TaskStatus

WAIT_MIN_SECONDS = 1.0
WAIT_MAX_SECONDS = 600.0
_RETRY_PAUSE = 1.0  # after a stream that could not be opened (429, 5xx, network): poll


class _Open(BaseModel):
    # Fields the API adds later pass through (and stay in the structured content).
    model_config = ConfigDict(extra="allow")


class Task(_Open):
    """A task as GET /v1/tasks/{id} answers it: the main fields here, the others pass too."""

    id: str
    status: TaskStatus
    input: str = ""
    title: str | None = None
    conversation_id: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="set once succeeded")
    error: dict[str, Any] | None = Field(default=None, description="set once failed")
    steps: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str | None = None
    finished_at: str | None = None


class TaskSummary(_Open):
    id: str
    status: TaskStatus
    title: str | None = None
    input: str = Field(default="", description="the first 200 characters")
    created_at: str | None = None
    finished_at: str | None = None


class TaskList(_Open):
    items: list[TaskSummary]
    next_cursor: str | None = None


class TaskWait(BaseModel):
    ended: bool = Field(description="true when the task is finished (succeeded, failed, "
                        "cancelled); false when the wait timed out first")  # fmt: skip
    waited_seconds: float
    task: Task


Seconds = Annotated[float, Field(ge=WAIT_MIN_SECONDS, le=WAIT_MAX_SECONDS)]
M = TypeVar("M", bound=BaseModel)


def _refusal(response: httpx.Response, unauthorized_hint: str) -> ToolError:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    hint = f" ({unauthorized_hint})" if response.status_code == 401 and unauthorized_hint else ""
    return ToolError(f"chatsys answered {response.status_code}: {detail}{hint}")


def _shaped(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ToolError(f"chatsys answered an unexpected {model.__name__}: {exc}") from None


class ChatsysApi:
    """The HTTP calls behind the tools; a refusal or an unreachable API is a ``ToolError``."""

    def __init__(
        self, api_url: str, *, api_key: str | None, timeout: float, unauthorized_hint: str
    ) -> None:
        self.base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._hint = unauthorized_hint

    def _client(self, *, read: float | None) -> httpx.AsyncClient:
        limits = httpx.Timeout(self._timeout, read=read)
        return httpx.AsyncClient(base_url=self.base, timeout=limits, headers=self._headers)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._client(read=self._timeout) as http:
            try:
                response = await http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ToolError(f"chatsys at {self.base} cannot be reached: {exc}") from None
        if not response.is_success:
            raise _refusal(response, self._hint)
        return response.json()

    async def follow(self, task_id: str, after: int) -> int:
        """Read the task's SSE stream from ``after`` until it ends (after the terminal
        event, or cut short: overflow, restart); the last seq seen. A stream that cannot
        be opened now (429, 5xx, network) costs a pause, so the caller polls meanwhile."""
        path = f"/v1/tasks/{task_id}/events"
        sse = {"Accept": "text/event-stream"}
        try:
            async with (
                self._client(read=None) as http,
                http.stream("GET", path, params={"after": after}, headers=sse) as response,
            ):
                if response.status_code == 204:  # finished, nothing after `after`
                    return after
                if response.status_code == 429 or response.status_code >= 500:
                    await anyio.sleep(_RETRY_PAUSE)
                    return after
                if not response.is_success:
                    await response.aread()
                    raise _refusal(response, self._hint)
                async for line in response.aiter_lines():
                    if line.startswith("id:") and line[3:].strip().isdigit():
                        after = int(line[3:].strip())
        except httpx.HTTPError:
            await anyio.sleep(_RETRY_PAUSE)
        return after

    async def task(self, task_id: str) -> Task:
        return _shaped(Task, await self.call("GET", f"/v1/tasks/{task_id}"))

    async def wait(self, task_id: str, within: float) -> TaskWait:
        started = time.monotonic()
        deadline = started + within
        task = await self.task(task_id)
        after = 0
        while not task.status.is_terminal and (left := deadline - time.monotonic()) > 0:
            with anyio.move_on_after(left):
                after = await self.follow(task_id, after)
            task = await self.task(task_id)
        waited = round(time.monotonic() - started, 3)
        return TaskWait(ended=task.status.is_terminal, waited_seconds=waited, task=task)


def build_bridge(
    api_url: str,
    *,
    api_key: str | None = None,
    timeout: float = 30.0,
    unauthorized_hint: str = "",
) -> MCPServer:
    server: MCPServer = MCPServer(
        "chatsys",
        version=__version__,
        instructions="Submit requests to the chatsys multi-agent service and read their results."
        " A task runs in the background: submit it, then wait_for_task for its result.",
        log_level="WARNING",
    )
    api = ChatsysApi(api_url, api_key=api_key, timeout=timeout, unauthorized_hint=unauthorized_hint)

    @server.tool()
    async def submit_task(
        input: str,
        conversation_id: str | None = None,
        agents: list[str] | None = None,
    ) -> Task:
        """Submit a request to chatsys; returns the queued task (wait_for_task for its
        result)."""
        body: dict[str, Any] = {"input": input}
        if agents:
            body["agents"] = agents
        if conversation_id:
            body["conversation_id"] = conversation_id
        return _shaped(Task, await api.call("POST", "/v1/tasks", json=body))

    @server.tool()
    async def get_task(task_id: str) -> Task:
        """A task with its status, steps, result and error."""
        return await api.task(task_id)

    @server.tool()
    async def list_tasks(limit: int = 20, status: TaskStatus | None = None) -> TaskList:
        """The newest tasks first (optionally only those with this status)."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if status is not None:
            params["status"] = status.value
        return _shaped(TaskList, await api.call("GET", "/v1/tasks", params=params))

    @server.tool()
    async def wait_for_task(task_id: str, timeout_seconds: Seconds = 25.0) -> TaskWait:
        """Wait until the task ends (succeeded, failed or cancelled) and return it with its
        result; after timeout_seconds (1 to 600, default 25) return it as it is then, with
        ended false: call again to keep waiting. MCP clients give up on a tool call after
        a limit of their own (often 30 or 60 s): keep timeout_seconds below it."""
        return await api.wait(task_id, timeout_seconds)

    return server


async def serve(
    api_url: str,
    *,
    transport: Literal["stdio", "http"],
    host: str,
    port: int,
    api_key: str | None = None,
    unauthorized_hint: str = "",
) -> None:
    bridge = build_bridge(api_url, api_key=api_key, unauthorized_hint=unauthorized_hint)
    if transport == "stdio":
        await bridge.run_stdio_async()
    else:
        await bridge.run_streamable_http_async(host=host, port=port)
