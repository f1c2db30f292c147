"""A stdio MCP server's stderr, relayed into our log.

Given our own stderr, a server's lines (its logs, its tracebacks, whatever it prints)
would reach the process' output untouched, past the log pipeline and its secret
scrubber (``chatsys.infra.log_scrub``): a server that prints the token it was given
would print it for everyone. So each server writes into a pipe instead, and a thread
logs every line it reads as ``chatsys.mcp.server_stderr`` with the server's name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import structlog

log: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("chatsys.mcp")

MAX_LINE = 4000  # characters of one line kept in the log


@contextmanager
def relayed_stderr(server: str) -> Iterator[TextIO]:
    """A file to give the child as its stderr; our end closes when the block ends, and
    the relay ends when the child's end closes too (at its exit)."""
    read_fd, write_fd = os.pipe()
    thread = threading.Thread(
        target=_relay, args=(read_fd, server), name=f"mcp-stderr-{server}", daemon=True
    )
    thread.start()
    with os.fdopen(write_fd, "w") as writer:
        yield writer


def _relay(read_fd: int, server: str) -> None:
    with os.fdopen(read_fd, "rb") as lines:
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                log.info("chatsys.mcp.server_stderr", server=server, line=line[:MAX_LINE])
