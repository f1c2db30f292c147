"""Where a stdio MCP server's command is found: chatsys' own bin directory (its virtualenv)
first, then PATH; a command with a slash is a path and never looked up. The executables
are real files (scripts in temporary folders, and the venv's own ``mcp-server-time``)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from chatsys.agents.mcp.config import parse_server
from chatsys.agents.mcp.transports import StartError, own_bin_dir, resolve_command


def executable(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return script


def test_a_bare_name_is_found_in_chatsys_bin_dir_when_path_lacks_it(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    tool = executable(venv_bin, "some-mcp-server")
    config = parse_server(
        {"name": "s", "command": "some-mcp-server", "env": {"PATH": str(tmp_path / "empty")}}
    )
    assert resolve_command(config, first_in=venv_bin) == str(tool)


def test_chatsys_bin_dir_comes_before_path(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    ours = executable(venv_bin, "some-mcp-server")
    elsewhere = tmp_path / "usr" / "bin"
    executable(elsewhere, "some-mcp-server")
    config = parse_server(
        {"name": "s", "command": "some-mcp-server", "env": {"PATH": str(elsewhere)}}
    )
    assert resolve_command(config, first_in=venv_bin) == str(ours)


def test_path_is_searched_when_chatsys_bin_dir_lacks_the_command(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    elsewhere = tmp_path / "usr" / "bin"
    theirs = executable(elsewhere, "some-mcp-server")
    config = parse_server(
        {"name": "s", "command": "some-mcp-server", "env": {"PATH": str(elsewhere)}}
    )
    assert resolve_command(config, first_in=venv_bin) == str(theirs)


def test_a_command_with_a_slash_is_a_path_never_looked_up(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    executable(venv_bin, "some-mcp-server")
    work = tmp_path / "work"
    work.mkdir()
    config = parse_server(
        {
            "name": "s",
            "command": "./some-mcp-server",
            "cwd": str(work),
            "env": {"PATH": str(venv_bin)},
        }
    )
    with pytest.raises(
        StartError, match=re.escape("not found or not executable: ./some-mcp-server")
    ):
        resolve_command(config, first_in=venv_bin)
    here = executable(work, "some-mcp-server")
    assert Path(resolve_command(config, first_in=venv_bin)) == here


def test_a_missing_command_names_both_places_searched(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    config = parse_server(
        {"name": "s", "command": "no-such-server", "env": {"PATH": str(tmp_path)}}
    )
    with pytest.raises(
        StartError, match=re.escape(f"no-such-server (searched {venv_bin}, then PATH)")
    ):
        resolve_command(config, first_in=venv_bin)


def test_by_default_the_running_venv_is_searched_first() -> None:
    """`pip install mcp-server-time` into chatsys' venv, then `"command": "mcp-server-time"`,
    with that venv's bin not on PATH."""
    assert own_bin_dir() == Path(sys.executable).parent
    installed = shutil.which("mcp-server-time", path=str(own_bin_dir()))
    assert installed is not None, "mcp-server-time is in the dev extra"
    config = parse_server(
        {"name": "time", "command": "mcp-server-time", "env": {"PATH": "/usr/bin:/bin"}}
    )
    assert resolve_command(config) == installed
