"""What the API needs from the rest of the system: domain use cases, built by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chatsys.api.access import AccessServices
from chatsys.api.streaming import StreamConfig
from chatsys.domain.access import CreateApiKey, ListApiKeys, ListAuditLogs, RevokeApiKey
from chatsys.domain.approval_decisions import DecideApproval, ListApprovals
from chatsys.domain.conversations import GetConversation, ListConversations, StartConversation
from chatsys.domain.health import CheckReadiness
from chatsys.domain.identity import Role
from chatsys.domain.mcp import McpServers
from chatsys.domain.streaming import FollowConversation, FollowTask
from chatsys.domain.submission import SubmitTask, TaskQuota
from chatsys.domain.task_queries import (
    AnalyzeText,
    CancelTask,
    GetTask,
    ListMessages,
    ListTaskEvents,
    ListTasks,
)
from chatsys.domain.webhook_delivery import GetDelivery, ListDeliveries, Redeliver
from chatsys.domain.webhook_endpoints import (
    CreateWebhook,
    DeleteWebhook,
    GetWebhook,
    ListWebhooks,
    RotateWebhookSecret,
)


@dataclass(frozen=True, slots=True)
class ApiServices:
    readiness: CheckReadiness
    llm: dict[str, Any]
    agents: list[dict[str, Any]]
    start_conversation: StartConversation
    get_conversation: GetConversation
    list_conversations: ListConversations
    submit_task: SubmitTask
    get_task: GetTask
    list_tasks: ListTasks
    list_events: ListTaskEvents
    cancel_task: CancelTask
    analyze: AnalyzeText
    list_messages: ListMessages
    follow_task: FollowTask
    follow_conversation: FollowConversation
    stream: StreamConfig
    going_away: Callable[[], None]  # shutdown begins: end every live stream now
    mcp: McpServers
    create_webhook: CreateWebhook
    list_webhooks: ListWebhooks
    get_webhook: GetWebhook
    delete_webhook: DeleteWebhook
    rotate_webhook_secret: RotateWebhookSecret
    list_deliveries: ListDeliveries
    get_delivery: GetDelivery
    redeliver: Redeliver
    access: AccessServices
    quotas: dict[Role, TaskQuota]
    create_key: CreateApiKey
    list_keys: ListApiKeys
    revoke_key: RevokeApiKey
    forget_key: Callable[[UUID], None]  # drop a revoked key from this process' cache
    audit_logs: ListAuditLogs
    decide_approval: DecideApproval
    list_approvals: ListApprovals
