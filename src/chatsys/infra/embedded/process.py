"""Child processes that never outlive their owner.

A child runs in its own session (a terminal's Ctrl-C reaches only the owner,
which stops children in order), optionally as another account, and the kernel
signals it if the owner dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class RunAs:
    uid: int
    gid: int


def child_setup(run_as: RunAs | None, death_signal: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: drop privileges, die with the parent."""
    parent = os.getpid()

    def setup() -> None:
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
        # Set after the uid change: the kernel clears the death signal on credential changes.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return setup


def spawn(
    argv: list[str],
    *,
    log: IO[bytes] | int | None,
    env: dict[str, str] | None = None,
    run_as: RunAs | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (a terminal's Ctrl-C reaches only the owner,
    which stops children in order) that is signalled if the owner dies."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        start_new_session=True,
        preexec_fn=child_setup(run_as, death_signal),  # noqa: PLW1509 - needed for pdeathsig/uid
    )


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    first: int = signal.SIGTERM,
    grace: float = 15.0,
) -> int:
    """Signal ``proc``, wait up to ``grace`` seconds, then kill it. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    return proc.returncode
