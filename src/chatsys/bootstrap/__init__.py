"""The composition root, split by process: ``components`` (settings -> adapters, shared
by every process), ``api`` (each feature's routes get their use cases), ``worker``
(arq's start-up hook) and ``cli`` (what the `chatsys` command needs)."""

from __future__ import annotations

from chatsys.bootstrap.api import app_factory, build_app
from chatsys.bootstrap.components import ConfigurationError, Resources, load_settings
from chatsys.bootstrap.worker import build_worker

__all__ = ["ConfigurationError", "Resources", "app_factory", "build_app", "build_worker",
           "load_settings"]  # fmt: skip
