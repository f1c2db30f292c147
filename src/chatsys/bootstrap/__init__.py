"""The composition root, split by process: ``components`` (settings -> adapters, shared
by every process), ``api`` (each feature's routes get their use cases), ``worker``
(arq's start-up hook) and ``cli`` (what the `chatsys` command needs).

The names below are imported from their module on first use, so each process loads
only its own root: the worker never imports the API (FastAPI and every route), which
would cost it seconds of start-up and tens of MiB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatsys.bootstrap.api import app_factory, build_app
    from chatsys.bootstrap.components import ConfigurationError, Resources, load_settings
    from chatsys.bootstrap.worker import build_worker

_HOMES = {
    "app_factory": "chatsys.bootstrap.api",
    "build_app": "chatsys.bootstrap.api",
    "ConfigurationError": "chatsys.bootstrap.components",
    "Resources": "chatsys.bootstrap.components",
    "load_settings": "chatsys.bootstrap.components",
    "build_worker": "chatsys.bootstrap.worker",
}

__all__ = ["ConfigurationError", "Resources", "app_factory", "build_app", "build_worker",
           "load_settings"]  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # found directly from now on
    return value
