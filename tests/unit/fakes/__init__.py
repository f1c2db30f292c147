"""Hand-written in-memory fakes of the domain's ports (unit tests only).

``FakeDatabase`` holds the committed tables; ``db.uow`` is the unit-of-work factory the
use cases take. The other fakes stand for what lives outside the database: queues, the
webhook sender, the URL guard, the rate limiter, the model and its tools.
"""

from tests.unit.fakes import conformance as conformance
from tests.unit.fakes.access import FakeApiKeyRepository, FakeAuditLog, FakeRateLimiter
from tests.unit.fakes.approvals import FakeApprovalRepository
from tests.unit.fakes.clock import FakeClock
from tests.unit.fakes.conversations import FakeConversationRepository, FakeMessageRepository
from tests.unit.fakes.llm import BlockingLLM, FakeTools, LLMCall, ScriptedLLM, ToolCallMade
from tests.unit.fakes.tables import Tables
from tests.unit.fakes.tasks import (
    FakeEventLog,
    FakeJobQueue,
    FakeOutbox,
    FakeTaskRepository,
    FakeWorkerLiveness,
)
from tests.unit.fakes.uow import FakeDatabase, FakeUnitOfWork
from tests.unit.fakes.webhooks import (
    FakeNudge,
    FakeUrlGuard,
    FakeWebhookDeliveryRepository,
    FakeWebhookEndpointRepository,
    FakeWebhookSender,
)

__all__ = [
    "BlockingLLM",
    "FakeApiKeyRepository",
    "FakeApprovalRepository",
    "FakeAuditLog",
    "FakeClock",
    "FakeConversationRepository",
    "FakeDatabase",
    "FakeEventLog",
    "FakeJobQueue",
    "FakeMessageRepository",
    "FakeNudge",
    "FakeOutbox",
    "FakeRateLimiter",
    "FakeTaskRepository",
    "FakeTools",
    "FakeUnitOfWork",
    "FakeUrlGuard",
    "FakeWebhookDeliveryRepository",
    "FakeWebhookEndpointRepository",
    "FakeWebhookSender",
    "FakeWorkerLiveness",
    "LLMCall",
    "ScriptedLLM",
    "Tables",
    "ToolCallMade",
    "conformance",
]
