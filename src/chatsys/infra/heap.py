"""The garbage collector in long-running server processes.

CPython's full (generation 2) collection walks every container object alive,
and while it runs the event loop stops: every live stream, request and
heartbeat of the process waits. After start-up the API process holds about
200,000 such objects (FastAPI, pydantic, SQLAlchemy, redis, mcp) and a worker
about 450,000 (LiteLLM alone is more than half); one full pass over them took
125 ms and 315 ms on the 2-core reference machine. Nearly all of them live as
long as the process (modules, classes, schemas, compiled statements), so each
pass finds nothing there.

``settle_heap`` is called once start-up is done:

- it collects, then moves everything alive into the permanent generation
  (``gc.freeze``), so later collections only walk what came after start-up.
  Frozen objects are still freed by reference counting; only a reference cycle
  among them would stay, and the collection just before the freeze clears
  those that exist then;
- it raises the youngest generation's threshold from 700 to 50,000 net
  allocations. With 1,000 WebSocket subscribers, every event puts a thousand
  short-lived frames and futures in flight; at 700 the collector ran in the
  middle of such bursts, promoted them, and the promotions triggered full
  collections of the connections' objects (175 ms, measured by
  ``python -m bench --scenario streaming``: the p99 delay at 1,000 subscribers
  went from 181-347 ms to about 60 ms with both changes). A young collection
  at 50,000 takes 10-17 ms here.

Called by the process entry points (``chatsys api``, ``chatsys worker``; a worker
calls it again once LiteLLM, imported on first use, is loaded), never
by ``build_app``/``build_worker`` used in-process (tests), which would freeze
the host process' heap again and again.
"""

from __future__ import annotations

import gc
import time

from chatsys.infra.logging import get_logger

log = get_logger(__name__)

YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.info(
        "process.heap_settled",
        frozen_objects=gc.get_freeze_count(),
        young_threshold=YOUNG_THRESHOLD,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
