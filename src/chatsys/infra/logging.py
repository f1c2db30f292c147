"""structlog, configured once per process.

Pretty console lines in development (when attached to a terminal), JSON lines in
production and whenever ``CHATSYS_LOG_FORMAT=json``. Standard-library loggers
(uvicorn, arq, alembic, sqlalchemy) go through the same renderer, so a process
writes one format. Context (``request_id``, ``task_id``) is bound through
contextvars and appears on every line logged while it is bound.

No query string reaches the log (a stream's ``?ticket=`` is a credential): chatsys
logs each request and WebSocket connection itself, by path (``api/middleware.py``);
uvicorn's access log is off (``chatsys api``) and its WebSocket handshake lines are
dropped (:class:`NoQueryStrings`).

Every line, whatever logged it, passes through one :class:`SecretScrubber` after it
is rendered (``infra/log_scrub.py``): no credential or configured secret is written.
An uncaught exception is logged too (``chatsys.crashed``), not printed by Python.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

import structlog

from chatsys.infra.log_scrub import SecretScrubber, configured_secrets
from chatsys.infra.settings import Environment, Settings


def _want_json(settings: Settings) -> bool:
    if settings.log_format != "auto":
        return settings.log_format == "json"
    if settings.environment is Environment.PRODUCTION:
        return True
    return not sys.stderr.isatty()


class NoQueryStrings(logging.Filter):
    """On uvicorn's loggers (their records only, never chatsys' own). Drops uvicorn's
    WebSocket handshake lines (``'"WebSocket /path?query" [accepted]'``, at INFO on
    ``uvicorn.error``): chatsys logs each connection itself. And, should any other of
    its lines carry a path with a query string (the access log, were it switched on),
    the query goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and '"WebSocket %s"' in record.msg:
            return False
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(arg: object) -> object:
    if isinstance(arg, str) and arg.startswith("/") and "?" in arg:
        return arg.partition("?")[0]
    return arg


_NO_QUERY_STRINGS = NoQueryStrings()  # one instance: addFilter does not add it twice


def _drop_color_message(
    _: object, __: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """uvicorn passes its message twice, the second copy (``color_message``) with
    terminal colour codes in it; ours is the plain ``event``."""
    event.pop("color_message", None)
    return event


def configure_logging(settings: Settings, *, force: bool = False) -> None:
    """Set up structlog and the stdlib root logger (idempotent unless ``force``)."""
    if structlog.is_configured() and not force:
        return

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
    ]
    renderer: structlog.types.Processor
    if _want_json(settings):
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=_traceback_without_locals()
        )

    structlog.configure(
        # Drop below-level events first, before any processor spends time on them.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
            _scrubbing(SecretScrubber(configured_secrets(settings))),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    sys.excepthook = _log_crash
    # uvicorn installs its own handlers; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "alembic"):
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_NO_QUERY_STRINGS)
    # LiteLLM logs every call at INFO with its own formatter; ours says what matters.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        noisy = logging.getLogger(name)
        noisy.handlers.clear()
        noisy.propagate = True
        noisy.setLevel(logging.WARNING)


def _log_crash(kind: type[BaseException], error: BaseException, trace: Any) -> None:
    """A crash's traceback goes through the pipeline (and its scrubber), not straight to
    stderr as Python's own hook would write it."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("chatsys").critical("chatsys.crashed", exc_info=(kind, error, trace))


def _scrubbing(scrub: SecretScrubber) -> structlog.types.Processor:
    """The pipeline's last step: the rendered line, without its secrets."""

    def scrub_line(_: object, __: str, line: Any) -> Any:
        return scrub(line) if isinstance(line, str) else line

    return scrub_line


def get_logger(name: str, **initial: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial)
    return logger


def _traceback_without_locals() -> structlog.typing.ExceptionRenderer:
    """Tracebacks never show frame locals: they can hold secrets (webhook signing keys,
    API keys). structlog's default with rich installed shows them."""
    if importlib.util.find_spec("rich") is not None:
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.plain_traceback
