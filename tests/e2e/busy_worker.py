"""``chatsys worker``, plus a test hook: SIGUSR1 keeps the worker's event loop busy with
pure-Python CPU work for ``BUSY_SECONDS`` (the handler runs on the loop's thread, as a
CPU-bound step would). Run as ``python -m tests.e2e.busy_worker``."""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

from chatsys.cli import main


def _busy(signum: int, frame: FrameType | None) -> None:
    end = time.monotonic() + float(os.environ.get("BUSY_SECONDS", "4"))
    spins = 0
    while time.monotonic() < end:
        spins += 1


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _busy)
    raise SystemExit(main(["worker"]))
