"""Each fake is assigned to its port here, so that mypy (strict) checks that it satisfies
the ``Protocol``. Nothing here runs anything."""

from __future__ import annotations

from chatsys.domain.access.ports import (
    AccessUnitOfWork,
    ApiKeyRepository,
    AuditLog,
    RateLimiter,
)
from chatsys.domain.approvals.ports import ApprovalRepository, ApprovalsUnitOfWork
from chatsys.domain.conversations.ports import (
    ConversationRepository,
    ConversationsUnitOfWork,
    MessageRepository,
)
from chatsys.domain.llm.ports import LLM, ToolInvoker
from chatsys.domain.shared.clock import Clock
from chatsys.domain.shared.idempotency import IdempotencyRecords, IdempotencyUnitOfWork
from chatsys.domain.shared.uow import Factory
from chatsys.domain.streaming.ports import StreamingUnitOfWork
from chatsys.domain.tasks.ports import (
    EventLog,
    JobQueue,
    Outbox,
    TaskRepository,
    WorkerLiveness,
)
from chatsys.domain.tasks.uow import TasksUnitOfWork
from chatsys.domain.webhooks.ports import (
    DeliveryNudge,
    UrlGuard,
    WebhookDeliveryRepository,
    WebhookEndpointRepository,
    WebhookSender,
    WebhooksUnitOfWork,
)
from tests.unit.fakes.access import FakeApiKeyRepository, FakeAuditLog, FakeRateLimiter
from tests.unit.fakes.approvals import FakeApprovalRepository
from tests.unit.fakes.clock import FakeClock
from tests.unit.fakes.conversations import FakeConversationRepository, FakeMessageRepository
from tests.unit.fakes.idempotency import FakeIdempotencyRecords
from tests.unit.fakes.llm import FakeTools, ScriptedLLM
from tests.unit.fakes.session import Session
from tests.unit.fakes.tasks import (
    FakeEventLog,
    FakeJobQueue,
    FakeOutbox,
    FakeTaskRepository,
    FakeWorkerLiveness,
)
from tests.unit.fakes.uow import FakeDatabase
from tests.unit.fakes.webhooks import (
    FakeNudge,
    FakeUrlGuard,
    FakeWebhookDeliveryRepository,
    FakeWebhookEndpointRepository,
    FakeWebhookSender,
)


def _conforms(db: FakeDatabase, session: Session) -> None:
    clock: Clock = FakeClock()
    tasks: TaskRepository = FakeTaskRepository(session)
    events: EventLog = FakeEventLog(session)
    outbox: Outbox = FakeOutbox(session)
    jobs: JobQueue = FakeJobQueue()
    liveness: WorkerLiveness = FakeWorkerLiveness()
    conversations: ConversationRepository = FakeConversationRepository(session)
    messages: MessageRepository = FakeMessageRepository(session)
    approvals: ApprovalRepository = FakeApprovalRepository(session)
    endpoints: WebhookEndpointRepository = FakeWebhookEndpointRepository(session)
    deliveries: WebhookDeliveryRepository = FakeWebhookDeliveryRepository(session)
    nudge: DeliveryNudge = FakeNudge()
    sender: WebhookSender = FakeWebhookSender()
    guard: UrlGuard = FakeUrlGuard()
    audit: AuditLog = FakeAuditLog(session)
    api_keys: ApiKeyRepository = FakeApiKeyRepository(session)
    idempotency: IdempotencyRecords = FakeIdempotencyRecords(session)
    limiter: RateLimiter = FakeRateLimiter(clock)
    llm: LLM = ScriptedLLM()
    tools: ToolInvoker = FakeTools()
    task_uows: Factory[TasksUnitOfWork] = db.uow
    conversation_uows: Factory[ConversationsUnitOfWork] = db.uow
    approval_uows: Factory[ApprovalsUnitOfWork] = db.uow
    webhook_uows: Factory[WebhooksUnitOfWork] = db.uow
    access_uows: Factory[AccessUnitOfWork] = db.uow
    streaming_uows: Factory[StreamingUnitOfWork] = db.uow
    idempotency_uows: Factory[IdempotencyUnitOfWork] = db.uow
    del liveness
    del clock, tasks, events, outbox, jobs, conversations, messages, approvals, endpoints
    del deliveries, nudge, sender, guard, audit, api_keys, limiter, llm, tools
    del task_uows, conversation_uows, approval_uows, webhook_uows, access_uows, streaming_uows
    del idempotency, idempotency_uows
