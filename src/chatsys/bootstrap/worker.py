"""The worker process' composition root: arq's start-up hook builds what the jobs use.

Everything the start-up opens is entered on one ``AsyncExitStack``: when a step of
the start-up fails, what was opened before it (engine, Redis, MCP child processes,
the heartbeat) is closed before the error propagates, and the shutdown hook closes
all of it in reverse order even when one of the closings fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from arq.worker import Function, func

from chatsys.bootstrap.components import (
    Resources,
    gateway_config,
    load_settings,
    mcp_manager,
    retry_policy,
    service_urls,
    webhook_callbacks,
    webhook_sender,
)
from chatsys.domain.nlu.llm_analyzer import LLMAnalyzer, RulesTaskAnalyzer, TaskAnalyzer
from chatsys.domain.planning.planner import Planner
from chatsys.domain.tasks.recovery import RequeueStale
from chatsys.domain.tasks.running import RunTask
from chatsys.domain.tasks.submission import Dispatcher
from chatsys.domain.webhooks.delivery import DeliverWebhook
from chatsys.domain.webhooks.fairness import CircuitBreaker
from chatsys.infra import jobs
from chatsys.infra.arq_worker import SupervisedWorker
from chatsys.infra.clock import SystemClock
from chatsys.infra.heap import settle_heap
from chatsys.infra.heartbeat import WorkerHeartbeat, new_worker_id
from chatsys.infra.liveness import LivenessStamp, RedisWorkerLiveness
from chatsys.infra.logging import configure_logging, get_logger
from chatsys.infra.queue import DELIVER_WEBHOOK, RUN_TASK, is_high_run
from chatsys.infra.redis import arq_redis_settings
from chatsys.infra.settings import Settings
from chatsys.infra.webhook_http import HttpWebhookSender
from chatsys.infra.webhook_slots import NO_SLOTS, WebhookSlots

log = get_logger(__name__)

_STACK = "chatsys.exit_stack"  # arq's ctx key of what on_shutdown closes


def _webhook_slots(
    settings: Settings, resources: Resources, clock: SystemClock, sender: HttpWebhookSender
) -> WebhookSlots:
    hooks = settings.webhooks
    deliver = DeliverWebhook(
        resources.unit_of_work, clock, sender, retry_policy(settings),
        lease=hooks.lease, per_receiver=hooks.max_in_flight_per_endpoint,
        breaker=CircuitBreaker(
            hooks.breaker_threshold, hooks.breaker_backoff,
            max(hooks.breaker_max_backoff, hooks.breaker_backoff),
        ),
    )  # fmt: skip
    return WebhookSlots(
        deliver,
        clock,
        slots=settings.worker.webhook_concurrency,
        poll=hooks.poll_interval,
        grace=min(5.0, hooks.timeout),
        outages=resources.outages,
    )


async def _start(
    settings: Settings,
    worker_id: str,
    stack: contextlib.AsyncExitStack,
    *,
    tune_gc: bool,
    webhooks: bool,
) -> jobs.WorkerContext:
    from chatsys.agents.agent import RoleAgent
    from chatsys.agents.lazy_gateway import LazyLiteLLMGateway
    from chatsys.agents.mcp.invoker import McpToolInvoker
    from chatsys.domain.planning.executor import PlanExecutor

    resources = await Resources.open(settings, role="worker")
    stack.push_async_callback(resources.close)
    clock = SystemClock()
    uow = resources.unit_of_work
    dispatcher = Dispatcher(uow, resources.queue())
    slots = None
    if webhooks:
        sender = webhook_sender(settings)
        stack.push_async_callback(sender.aclose)  # its kept-alive connections
        slots = _webhook_slots(settings, resources, clock, sender)
    callbacks = webhook_callbacks(resources, slots or NO_SLOTS)
    llm = settings.llm
    gateway = LazyLiteLLMGateway(  # LiteLLM: on first use, then its heap is frozen too
        gateway_config(settings), on_loaded=settle_heap if tune_gc else None
    )
    analyzer: TaskAnalyzer = (
        LLMAnalyzer(gateway) if settings.features.llm_nlu else RulesTaskAnalyzer()
    )
    mcp = mcp_manager(settings, resources)
    stack.push_async_callback(mcp.close)  # every MCP server process is stopped there
    await mcp.start()
    executor = PlanExecutor(
        RoleAgent(gateway, McpToolInvoker(mcp)),
        max_parallel=llm.max_parallel_steps,
        max_attempts=llm.step_attempts,
        backoff=llm.step_backoff,
    )
    run = RunTask(
        uow,
        clock,
        analyzer=analyzer,
        planner=Planner(),
        executor=executor,
        dispatcher=dispatcher,
        callbacks=callbacks,
        worker_id=worker_id,
        heartbeat_interval=settings.worker.task_heartbeat,
        stale_after=settings.worker.task_stale_after,
        max_attempts=settings.worker.task_max_attempts,
        max_runtime=settings.worker.task_timeout,
        approval_timeout=settings.mcp.approval_timeout,
        approval_poll=settings.mcp.approval_poll_interval,
        single_statement=resources.single_statement,
    )
    w = settings.worker
    liveness = RedisWorkerLiveness(resources.redis, ttl=w.liveness_ttl, outages=resources.outages)
    sweeper = RequeueStale(
        uow, dispatcher, clock, callbacks=callbacks, stale_after=w.task_stale_after,
        liveness=liveness, grace=w.takeover_grace, worker_id=worker_id,
    )  # fmt: skip
    maintenance = jobs.Maintenance(
        dispatcher,
        sweeper,
        interval=settings.worker.maintenance_interval,
        outages=resources.outages,
    )
    heartbeat = WorkerHeartbeat(
        resources.redis,
        worker_id,
        interval=settings.worker.heartbeat_interval,
        ttl=settings.worker.heartbeat_ttl,
        outages=resources.outages,
    )
    if tune_gc:  # before the heartbeat, so the pause is over before it reports ready
        settle_heap()
    stamp = LivenessStamp(service_urls(settings)[1], worker_id, interval=w.liveness_interval,
                          ttl=w.liveness_ttl)  # fmt: skip
    await stamp.start()  # before the first claim; its key is deleted at shutdown
    stack.push_async_callback(stamp.stop)
    await heartbeat.start()
    stack.push_async_callback(heartbeat.stop)
    maintenance.start()
    stack.push_async_callback(maintenance.stop)
    if slots is not None:
        slots.start()
        stack.push_async_callback(slots.stop)  # before the engine closes: it gives back
    if llm.preload:
        gateway.preload()
    return jobs.WorkerContext(
        worker_id, resources.engine, run, slots, resources.outages, maintenance
    )


QUEUES = ("tasks", "webhooks")  # what ``chatsys worker --queue`` accepts


def _functions(settings: Settings, queue: str) -> list[Function]:
    # Attempt jobs of older versions (left in Redis by an upgrade) only wake the slots.
    legacy = func(jobs.deliver_webhook, name=DELIVER_WEBHOOK, max_tries=1, keep_result=0)
    ping = func(jobs.ping, name="chatsys.ping", timeout=30, max_tries=1)
    if queue == "webhooks":
        return [ping, legacy]
    # The task enforces its own time limit; arq's must never fire first.
    run = func(jobs.run_task, name=RUN_TASK, max_tries=3, timeout=settings.worker.task_timeout + 60)
    return [ping, run, legacy]


def _arq_worker(settings: Settings, queue: str, *, burst: bool, **hooks: Any) -> SupervisedWorker:
    _, redis_url = service_urls(settings)
    config = settings.worker
    tasks = queue == "tasks"
    # A high-priority run has slots of its own beside the task slots: it starts at once
    # even while every task slot is busy (chatsys issue 14).
    reserved = config.high_priority_slots if tasks else 0
    return SupervisedWorker(
        functions=_functions(settings, queue),
        queue_name=config.queue_name if tasks else config.webhook_queue_name,
        redis_settings=arq_redis_settings(redis_url),
        max_jobs=(config.task_concurrency + reserved) if tasks else 4,
        reserved=reserved,
        urgent=is_high_run if reserved else None,
        job_timeout=config.job_timeout,
        burst=burst,
        health_check_interval=max(config.heartbeat_interval, 1.0),
        # A webhooks-only worker's queue holds only pings: no need to look 100 times a second.
        poll_delay=config.poll_delay if tasks else max(config.poll_delay, 0.5),
        idle_poll=config.idle_poll,
        **hooks,
    )


def build_worker(
    settings: Settings | None = None,
    *,
    burst: bool = False,
    tune_gc: bool = False,
    queues: Sequence[str] = QUEUES,
) -> SupervisedWorker:
    """The arq worker; its start-up hook is the worker's composition root.

    ``queues``: what the process serves. ``tasks``: the arq queue of task runs, with
    ``CHATSYS_WORKER_TASK_CONCURRENCY`` slots. ``webhooks``: the webhook slots
    (``CHATSYS_WORKER_WEBHOOK_CONCURRENCY``, ``chatsys.infra.webhook_slots``), which
    claim due deliveries from Postgres beside it; a webhooks-only worker's arq queue
    (``CHATSYS_WORKER_WEBHOOK_QUEUE_NAME``) only answers pings. A burst run (``burst``)
    stops once the task queue is empty and the deliveries due by then are made.
    ``tune_gc``: the worker process settles its heap (``chatsys.infra.heap``)."""
    settings = settings or load_settings()
    configure_logging(settings)
    unknown = set(queues) - set(QUEUES)
    if unknown or not queues:
        raise ValueError(f"queues must be among {QUEUES}, not {sorted(unknown) or 'none'}")
    serving = list(dict.fromkeys(queues))  # in order, once each
    worker_id = new_worker_id()

    async def on_startup(ctx: dict[str, Any]) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            worker_ctx = ctx[jobs.CONTEXT] = await _start(
                settings, worker_id, stack, tune_gc=tune_gc, webhooks="webhooks" in serving
            )
        except BaseException:
            await stack.aclose()
            raise
        ctx[_STACK] = stack
        worker.outages = worker_ctx.outages
        worker.on_redis_back = worker_ctx.maintenance.resend_lost
        log.info("chatsys.worker.started", worker_id=worker_id, queues=serving)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        stack: contextlib.AsyncExitStack | None = ctx.pop(_STACK, None)
        worker_ctx: jobs.WorkerContext | None = ctx.get(jobs.CONTEXT)
        try:
            if burst and worker_ctx is not None and worker_ctx.webhooks is not None:
                await worker_ctx.webhooks.drain()
            if stack is not None:
                await stack.aclose()
        finally:
            log.info("chatsys.worker.stopped", worker_id=worker_id)

    worker = _arq_worker(
        settings,
        "tasks" if "tasks" in serving else "webhooks",
        burst=burst,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        handle_signals=not burst,
    )
    return worker
