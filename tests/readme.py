"""The README's code blocks, for the tests that run them.

A block a test runs carries a marker on the line before its opening fence, an HTML
comment GitHub does not show::

    <!-- readme-test: streaming-follow -->
    ```python
    ...

``block(name)`` gives that block's code; ``tests/unit/test_readme_blocks.py`` checks
that every block of the sections in ``TESTED_SECTIONS`` has a marker and that every
marker is asked for by a test (a call ``readme.block("name")`` somewhere in ``tests/``),
so a new block nobody runs fails the suite.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The README's examples assume `make run` on its default port.
DEFAULT_ADDRESS = "127.0.0.1:8000"
TESTED_SECTIONS = (
    "Streaming",
    "Webhooks",
    "Verifying webhooks",
    "MCP tools",
    "chatsys as an MCP server",
)

_MARKER = re.compile(r"^<!--\s*readme-test:\s*([a-z0-9-]+)\s*-->$")
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its section (the heading above it), language and code."""

    section: str
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    marker: str | None

    def on_port(self, port: int) -> str:
        """The code with the README's address (``127.0.0.1:8000``) moved to ``port``."""
        assert DEFAULT_ADDRESS in self.code, f"block {self.marker} names no {DEFAULT_ADDRESS}"
        return self.code.replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}")


def parse(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    found: list[Block] = []
    section, marker = "", None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            closing, body = fence.group(1), []
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith(closing):
                body.append(lines[i])
                i += 1
            code = "\n".join(body) + "\n"
            found.append(Block(section, fence.group(2), code, start, marker))
            marker = None
        elif heading := _HEADING.match(line):
            section, marker = heading.group(2), None
        elif named := _MARKER.match(line.strip()):
            marker = named.group(1)
        elif line.strip():
            marker = None  # a marker belongs to the block right after it
        i += 1
    return found


@cache
def blocks() -> tuple[Block, ...]:
    return tuple(parse(README.read_text(encoding="utf-8")))


def headings() -> list[str]:
    """The README's headings, in order (outside code blocks)."""
    found, fenced = [], False
    for line in README.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := _HEADING.match(line)):
            found.append(heading.group(2))
    return found


def block(name: str) -> Block:
    """The README block marked ``name``."""
    named = [b for b in blocks() if b.marker == name]
    assert len(named) == 1, f"README.md has {len(named)} blocks marked {name!r}"
    return named[0]


BASH = shutil.which("bash")


def run_shell(
    code: str, *, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a shell block as a user pastes it into bash."""
    assert BASH is not None, "the README's shell blocks need bash"
    return subprocess.run(
        [BASH, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def asked_for(tests: Path = ROOT / "tests") -> dict[str, list[str]]:
    """The markers the test modules ask for (``readme.block("name")``), and where."""
    asked: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "block"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "readme"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                asked.setdefault(node.args[0].value, []).append(where)
    return asked
