"""What the API needs from the rest of the system: domain use cases, built by bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from chatsys.api.access.middleware import AccessServices
from chatsys.api.streaming.sse import StreamConfig
from chatsys.domain.access.model import Role
from chatsys.domain.access.use_cases import CreateApiKey, ListApiKeys, ListAuditLogs, RevokeApiKey
from chatsys.domain.approvals.decisions import DecideApproval, ListApprovals
from chatsys.domain.conversations.messages import ListMessages
from chatsys.domain.conversations.use_cases import (
    GetConversation,
    ListConversations,
    StartConversation,
)
from chatsys.domain.health.readiness import CheckReadiness
from chatsys.domain.mcp.ports import McpServers
from chatsys.domain.nlu.analyze_text import AnalyzeText
from chatsys.domain.streaming.follow import FollowConversation, FollowTask
from chatsys.domain.tasks.cancel import CancelTask
from chatsys.domain.tasks.queries import GetTask, ListTaskEvents, ListTasks
from chatsys.domain.tasks.submission import SubmitTask, TaskQuota
from chatsys.domain.webhooks.delivery import GetDelivery, ListDeliveries, Redeliver
from chatsys.domain.webhooks.endpoints import (
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
