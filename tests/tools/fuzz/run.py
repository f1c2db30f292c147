"""The schemathesis run: which operations, checks, phases and budget, and why.

- ``--checks all``: every check schemathesis has, from 5xx and status, content type,
  header and schema conformance to positive/negative data, ignored auth (each
  operation is also called without the key), use-after-free and the Allow header.
- ``--phases examples,coverage,fuzzing,stateful``: all four; the stateful phase
  chains calls along the document's links (``chatsys/api/links.py``) and the ones
  schemathesis infers (Location headers, field names).
- ``--max-examples 100`` and ``--seed``: CI's budget, about 3 minutes on 2 cores,
  and the same cases every run (``--generation-database none``: nothing is
  remembered between runs). Longer: ``--max-examples 1000`` or another ``--seed``.
- ``--workers 1``: with two, hypothesis' lambda descriptions race in CPython 3.11's
  ``ast.parse`` ("AST constructor recursion depth mismatch"), a runtime error that
  fails the run; one worker keeps it deterministic too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support import ROOT
from tests.tools.fuzz.service import Live

CONFIG = Path(__file__).with_name("schemathesis.toml")
DEFAULT_EXAMPLES = 100
DEFAULT_SEED = 20260101

# Registering an MCP server starts its command as a process (or connects to any URL it
# names): generated commands and URLs are not for a fuzz. With none registered, no
# other MCP route can start one (tool calls of an unknown server answer 404), so the
# rest of /v1/mcp stays in; the built-in workspace server runs in process, its files
# in the temporary data dir.
EXCLUDED_OPERATIONS = ("mcp-create_server",)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY = re.compile(r"^=+ .* in [0-9.]+s =+$")


def st_command(
    live: Live, *, max_examples: int, seed: int, report_dir: Path | None, extra: Sequence[str]
) -> list[str]:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    command = [
        st,
        "--config-file",
        str(CONFIG),
        "run",
        f"{live.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {live.admin_key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    for operation in EXCLUDED_OPERATIONS:
        command += ["--exclude-operation-id", operation]
    if report_dir is not None:
        command += ["--report", "junit,ndjson", "--report-dir", str(report_dir)]
    return [*command, *extra]


def run_schemathesis(
    live: Live, *, max_examples: int, seed: int, report_dir: Path | None, extra: Sequence[str]
) -> int:
    command = st_command(
        live, max_examples=max_examples, seed=seed, report_dir=report_dir, extra=extra
    )
    started = time.monotonic()
    summary = None
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            plain = _ANSI.sub("", line).strip()
            if _SUMMARY.match(plain):
                summary = plain
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    took = time.monotonic() - started
    print(f"\nschemathesis summary: {summary or '(no summary line)'}", flush=True)
    print(f"schemathesis took {took:.0f}s, exit code {code}", flush=True)
    return code
