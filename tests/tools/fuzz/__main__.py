"""`python -m tests.tools.fuzz` (`make fuzz`): schemathesis against a live chatsys.

See the package docstring for what runs and why; ``--help`` for the knobs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url

from chatsys.infra.embedded.process import spawn
from tests.tools.fuzz.run import DEFAULT_EXAMPLES, DEFAULT_SEED, run_schemathesis
from tests.tools.fuzz.sandbox import (
    INSIDE,
    SandboxError,
    bring_loopback_up,
    relays,
    unshare_command,
)
from tests.tools.fuzz.service import live_chatsys

_DB_SOCKET = "CHATSYS_FUZZ_DATABASE_SOCKET"
_REDIS_SOCKET = "CHATSYS_FUZZ_REDIS_SOCKET"


def _say(message: str) -> None:
    print(f"fuzz: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tools.fuzz",
        description="Start chatsys (chatsys dev, fake model) in a network namespace of its "
        "own and run schemathesis against it: every check, every phase, stateful included.",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"test cases per operation and phase (default {DEFAULT_EXAMPLES}; CI's budget)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"the run's seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="also write schemathesis' JUnit and NDJSON reports here",
    )
    parser.add_argument(
        "st_args", nargs="*", help="more `st run` options, after `--` (e.g. -- --max-failures 1)"
    )
    return parser


def _url_through(url: str, port: int, *, sqlalchemy: bool) -> str:
    if sqlalchemy:
        moved = make_url(url).set(host="127.0.0.1", port=port)
        return moved.render_as_string(hide_password=False)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _outer(argv: Sequence[str]) -> int:
    """Run this module again in a new network namespace; relay the servers named by
    CHATSYS_TEST_* into it; pass signals on; answer its exit code."""
    started = time.monotonic()
    try:
        prefix = unshare_command()
    except SandboxError as exc:
        _say(str(exc))
        return 2
    env = {**os.environ, INSIDE: "1"}
    with tempfile.TemporaryDirectory(prefix="chatsys-fuzz-sockets-") as sockets, relays() as relay:
        for variable, socket_variable, default_port in (
            ("CHATSYS_TEST_DATABASE_URL", _DB_SOCKET, 5432),
            ("CHATSYS_TEST_REDIS_URL", _REDIS_SOCKET, 6379),
        ):
            url = os.environ.get(variable)
            if not url:
                continue
            if variable.endswith("DATABASE_URL"):
                parsed = make_url(url)
                host, port = parsed.host or "127.0.0.1", parsed.port or default_port
            else:
                from urllib.parse import urlsplit

                split = urlsplit(url)
                host, port = split.hostname or "127.0.0.1", split.port or default_port
            path = Path(sockets) / f"{socket_variable.lower()}.sock"
            relay.unix_to_tcp(path, host, port)
            env[socket_variable] = str(path)
        inner = spawn([*prefix, sys.executable, "-m", "tests.tools.fuzz", *argv], log=None, env=env)

        def forward(signum: int, _frame: FrameType | None) -> None:
            if inner.poll() is None:
                inner.send_signal(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        code = inner.wait()
    _say(f"finished in {time.monotonic() - started:.0f}s with exit code {code}")
    return code if code >= 0 else 128 - code


def _inner(args: argparse.Namespace) -> int:
    # SIGINT, SIGTERM and SIGHUP unwind like Ctrl-C: every `finally` below stops what
    # it started. SIGINT explicitly: a process started in the background inherits it
    # ignored, and Python then leaves it so.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        bring_loopback_up()
    except (SandboxError, OSError) as exc:
        _say(f"no isolated network: {exc}")
        return 2
    with relays() as relay, tempfile.TemporaryDirectory(prefix="chatsys-fuzz-") as tmp:
        database_url = redis_url = None
        if os.environ.get(_DB_SOCKET):
            port = relay.tcp_to_unix(Path(os.environ[_DB_SOCKET]))
            database_url = _url_through(
                os.environ["CHATSYS_TEST_DATABASE_URL"], port, sqlalchemy=True
            )
        if os.environ.get(_REDIS_SOCKET):
            port = relay.tcp_to_unix(Path(os.environ[_REDIS_SOCKET]))
            redis_url = _url_through(os.environ["CHATSYS_TEST_REDIS_URL"], port, sqlalchemy=False)
        work = Path(tmp)
        _say("starting chatsys dev (embedded servers unless CHATSYS_TEST_* URLs are set)")
        started = time.monotonic()
        try:
            with live_chatsys(work, database_url=database_url, redis_url=redis_url) as live:
                _say(
                    f"chatsys ready at {live.base_url} in {time.monotonic() - started:.0f}s; "
                    "running schemathesis"
                )
                code = run_schemathesis(
                    live,
                    max_examples=args.max_examples,
                    seed=args.seed,
                    report_dir=args.report_dir,
                    extra=args.st_args,
                )
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop must not be cut short
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                stopping = time.monotonic()
            _say(f"chatsys stopped in {time.monotonic() - stopping:.0f}s, nothing left running")
        except KeyboardInterrupt:
            _say("interrupted; everything started was stopped")
            return 130
        except (AssertionError, subprocess.SubprocessError) as exc:
            _say(f"failed: {exc}")
            log = work / "chatsys.log"
            if log.exists():
                print(log.read_text()[-4000:], file=sys.stderr)
            return 1
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if os.environ.get(INSIDE) != "1":
        return _outer(argv)
    return _inner(args)


if __name__ == "__main__":
    raise SystemExit(main())
