"""The ``chatsys`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

# LiteLLM must never fetch its model cost map over the network at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DESCRIPTION = """\
chatsys: an async-native multi-agent task and chat service.

Configuration comes from CHATSYS_* environment variables (and .env); see the
README's configuration table. With no CHATSYS_DATABASE_URL / CHATSYS_REDIS_URL,
`chatsys dev` and `chatsys migrate` start Postgres and Redis embedded from pip
wheels, keeping their data in CHATSYS_DATA_DIR (default .chatsys/)."""


def _fail(message: str) -> int:
    print(f"chatsys: {message}", file=sys.stderr)
    return 2


def cmd_dev(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import load_settings
    from chatsys.bootstrap.cli import local_admin_key
    from chatsys.infra.supervisor import DevSupervisor

    settings = load_settings()
    return DevSupervisor(
        settings,
        host=args.host or settings.api.host,
        port=args.port or settings.api.port,
        with_worker=not args.no_worker,
        local_key=lambda database_url: local_admin_key(settings, database_url),
    ).run()


def cmd_api(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import load_settings
    from chatsys.bootstrap.components import service_urls
    from chatsys.infra.http_server import serve, server_config
    from chatsys.infra.logging import configure_logging

    settings = load_settings()
    service_urls(settings)  # fail fast, with a useful message, before uvicorn starts
    configure_logging(settings)
    config = server_config(
        "chatsys.bootstrap:app_factory",
        settings.api,
        factory=True,
        host=args.host or settings.api.host,
        port=args.port or settings.api.port,
        workers=args.workers or settings.api.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        ws_max_size=settings.stream.max_frame_bytes,
    )
    return serve(config)


def cmd_worker(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import build_worker

    queues = [args.queue] if args.queue else ["tasks", "webhooks"]
    build_worker(burst=args.burst, tune_gc=True, queues=queues).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import load_settings
    from chatsys.infra.db import migrations
    from chatsys.infra.embedded.stack import EmbeddedStack

    settings = load_settings()
    url = settings.database.url.get_secret_value() if settings.database.url else None
    with EmbeddedStack(
        settings.data_dir,
        database_url=url,
        redis_url=None,
        want_redis=False,
        progress=lambda m: print(f"chatsys: {m}", file=sys.stderr),
    ) as endpoints:
        if args.downgrade:
            migrations.downgrade(endpoints.database_url, args.downgrade)
            print(f"chatsys: database downgraded to {args.downgrade}", file=sys.stderr)
        else:
            migrations.upgrade(endpoints.database_url, args.revision)
            print(f"chatsys: database upgraded to {args.revision}", file=sys.stderr)
        if args.check:
            migrations.check(endpoints.database_url)
            print("chatsys: no drift between models and migrations", file=sys.stderr)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import build_app
    from chatsys.infra.settings import Settings

    spec = build_app(Settings()).openapi()
    text = json.dumps(spec, indent=2, sort_keys=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from chatsys.bootstrap import load_settings
    from chatsys.bootstrap.cli import create_key_now
    from chatsys.domain.access.model import Role
    from chatsys.domain.tasks.model import Priority

    key, full = create_key_now(
        load_settings(),
        name=args.name,
        role=Role(args.role),
        subject=args.subject,
        default_priority=Priority(args.priority),
        progress=lambda m: print(f"chatsys: {m}", file=sys.stderr),
    )
    print(full)
    print(
        f"chatsys: created {key.role.value} key {key.id} ({key.name}, subject {key.subject}, "
        f"default priority {key.default_priority.value}); it is shown only now",
        file=sys.stderr,
    )
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import anyio

    from chatsys.api.mcp_bridge import serve
    from chatsys.bootstrap import load_settings
    from chatsys.bootstrap.cli import bridge_target

    target = bridge_target(load_settings(), args.api_url)
    anyio.run(
        lambda: serve(
            target.api_url,
            transport=args.transport,
            host=args.host,
            port=args.port,
            api_key=target.api_key,
            unauthorized_hint=target.unauthorized_hint,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatsys",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    dev = sub.add_parser(
        "dev",
        help="run everything in the foreground: embedded servers if needed, migrations, "
        "API, worker",
        description="Start embedded Postgres/Redis when no URL is set, apply migrations, run the "
        "API and one worker, and print the URL once /readyz answers. Ctrl-C stops it all.",
    )
    dev.add_argument("--host", help="API host (default CHATSYS_API_HOST or 127.0.0.1)")
    dev.add_argument("--port", type=int, help="API port (default CHATSYS_API_PORT or 8000)")
    dev.add_argument("--no-worker", action="store_true", help="do not start a worker")
    dev.set_defaults(handler=cmd_dev)

    api = sub.add_parser(
        "api",
        help="serve the HTTP API (needs CHATSYS_DATABASE_URL and CHATSYS_REDIS_URL)",
        description="Serve the HTTP and WebSocket API with uvicorn.",
    )
    api.add_argument("--host", help="default CHATSYS_API_HOST or 127.0.0.1")
    api.add_argument("--port", type=int, help="default CHATSYS_API_PORT or 8000")
    api.add_argument("--workers", type=int, help="uvicorn worker processes (CHATSYS_API_WORKERS)")
    api.set_defaults(handler=cmd_api)

    worker = sub.add_parser(
        "worker",
        help="run an arq worker that executes tasks (needs the same URLs as the API)",
        description="Run one arq worker process. Run as many as you need, on any machine.",
    )
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument(
        "--queue",
        choices=["tasks", "webhooks"],
        help="serve one queue only (default both, each with its own concurrency)",
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = sub.add_parser(
        "migrate",
        help="apply database migrations (embedded Postgres when no URL is set)",
        description="Upgrade (or downgrade) the database schema with Alembic.",
    )
    migrate.add_argument("--revision", default="head", help="target revision (default head)")
    migrate.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead")
    migrate.add_argument(
        "--check", action="store_true", help="then fail if the models differ from the migrations"
    )
    migrate.set_defaults(handler=cmd_migrate)

    openapi = sub.add_parser(
        "openapi",
        help="print the OpenAPI spec as JSON (no servers needed)",
        description="Print the OpenAPI document, e.g. to generate SDKs.",
    )
    openapi.add_argument("-o", "--output", help="write to this file instead of stdout")
    openapi.set_defaults(handler=cmd_openapi)

    keys = sub.add_parser(
        "keys",
        help="manage API keys directly in the database (for the first admin key; the data "
        "dir's embedded Postgres whether `chatsys dev` runs or not)",
        description="API keys; once you have an admin key, the /v1/api-keys endpoints do the same.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    keys_create = keys_sub.add_parser(
        "create", help="create a key and print it (once) on stdout", description="Create a key."
    )
    keys_create.add_argument("--name", required=True, help="what the key is for")
    keys_create.add_argument(
        "--role", choices=["admin", "member", "viewer"], default="member", help="default member"
    )
    keys_create.add_argument("--subject", help="who owns what it creates (default: the key)")
    keys_create.add_argument(
        "--priority",
        choices=["low", "normal", "high"],
        default="normal",
        help="the priority of the tasks it submits without one (default normal)",
    )
    keys_create.set_defaults(handler=cmd_keys_create)

    mcp = sub.add_parser(
        "mcp",
        help="serve chatsys' API as MCP tools (submit_task, get_task, list_tasks, wait_for_task)",
        description="An MCP server whose tools call a running chatsys API, so MCP clients "
        "(desktop assistants, IDEs, other agents) can use chatsys as a tool.",
    )
    mcp.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default) or streamable HTTP at http://HOST:PORT/mcp",
    )
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP bind address (127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP port (8765)")
    mcp.add_argument(
        "--api-url",
        help="the chatsys API (CHATSYS_MCP_API_URL; default this machine at CHATSYS_API_PORT, "
        "with the data dir's admin.key unless CHATSYS_MCP_API_KEY is set)",
    )
    mcp.set_defaults(handler=cmd_mcp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from chatsys.bootstrap import ConfigurationError
    from chatsys.infra.embedded.server import EmbeddedServerError

    try:
        code: int = args.handler(args)
    except (ConfigurationError, EmbeddedServerError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return code
