"""Acceptance 3: path-escape attempts through the workspace tools (a real MCP session to
our server) never reach outside the task's folder; legitimate operations all work."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatsys.agents.mcp.confinement import ConfinedFolder, PathRefused, split_relative
from chatsys.agents.mcp.manager import McpManager
from tests.mcp.support import OpenWatch, workspace_manager

KEY = "task1"
SECRET = "CANARY-7f3a-do-not-read"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    base = tmp_path / "workspaces"
    root = base / KEY
    outside = tmp_path / "outside"
    sibling = base / f"{KEY}_x"  # shares the root's prefix: /…/task1_x beside /…/task1
    for folder in (root / "dir", outside, sibling):
        folder.mkdir(parents=True)
    (outside / "canary.txt").write_text(SECRET)
    (sibling / "secret.txt").write_text(SECRET)
    (root / "notes.txt").write_text("inside\n")
    (root / "dir" / "a.txt").write_text("a\n")
    (root / "link_out").symlink_to(outside)
    (root / "file_link").symlink_to(outside / "canary.txt")
    (root / "dir" / "inner_link").symlink_to("../../../outside")
    (root / "sib_link").symlink_to(sibling)
    (root / "abs_link").symlink_to("/etc")
    (root / "inner_ok").symlink_to("notes.txt")
    return {"base": base, "root": root, "outside": outside, "sibling": sibling}


@pytest.fixture
async def manager(layout: dict[str, Path]) -> AsyncIterator[McpManager]:
    running = workspace_manager(layout["base"])
    await running.start()
    yield running
    await running.close()


def escape_paths(layout: dict[str, Path]) -> list[str]:
    canary = str(layout["outside"] / "canary.txt")
    secret = str(layout["sibling"] / "secret.txt")
    return [
        "../outside/canary.txt",
        "../../outside/canary.txt",
        "../../../../../../../../etc/passwd",
        "dir/../../outside/canary.txt",
        "dir/../../../outside",
        "./../outside",
        "..",
        "../",
        "%2e%2e/outside/canary.txt",
        "%2E%2E/%2E%2E/outside",
        "..%2foutside%2fcanary.txt",
        "..%2Foutside",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "dir/%2e%2e/%2e%2e/outside",
        canary,
        "/etc/passwd",
        "/etc",
        "/",
        "//etc/passwd",
        "/" + canary,
        "//" + canary.lstrip("/"),
        secret,
        "notes.txt\x00.png",
        "\x00",
        "dir/\x00/../../outside",
        "..\\outside\\canary.txt",
        "..\\..\\etc\\passwd",
        "dir\\..\\..\\outside",
        "C:\\Windows\\win.ini",
        f"../{KEY}_x/secret.txt",
        f"../{KEY}_x",
        f"../../workspaces/{KEY}_x/secret.txt",
        "link_out/canary.txt",
        "link_out/",
        "link_out/../outside/canary.txt",
        "file_link",
        "dir/inner_link/canary.txt",
        "dir/inner_link",
        "sib_link/secret.txt",
        "sib_link",
        "abs_link/passwd",
        "abs_link/",
        "link_out/new.txt",
        "dir/inner_link/new.txt",
        "sib_link/new.txt",
        "\x1b[31m../outside",
        "dir/../" * 3 + "outside",
        ".../../outside",
        "dir/./../../outside/canary.txt",
        "a" * 1100,
    ]


async def attempt(manager: McpManager, tool: str, path: str) -> tuple[bool, str]:
    arguments = {"path": path, "content": "pwned"} if tool == "write_file" else {"path": path}
    result = await manager.call("workspace", tool, arguments, workspace=KEY)
    return result.is_error, result.content


async def test_two_hundred_escape_attempts_all_fail(
    manager: McpManager, layout: dict[str, Path]
) -> None:
    paths = escape_paths(layout)
    tools = ("read_file", "write_file", "list_dir", "stat")
    assert len(paths) * len(tools) == 200
    before = {p: p.read_text() for p in (layout["outside"] / "canary.txt",
                                         layout["sibling"] / "secret.txt")}  # fmt: skip
    outside_listing = sorted(os.listdir(layout["outside"])), sorted(os.listdir(layout["sibling"]))
    watch = OpenWatch(layout["outside"], layout["sibling"])
    escaped = []
    try:
        for path in paths:
            for tool in tools:
                refused, content = await attempt(manager, tool, path)
                reported_symlink = tool == "stat" and '"type": "symlink"' in content
                if SECRET in content or not (refused or reported_symlink):
                    escaped.append((tool, path, content[:100]))
        events = watch.drain()
    finally:
        watch.close()
    assert escaped == []
    assert events == [], f"something outside the root was touched: {events}"
    assert {p: p.read_text() for p in before} == before
    assert (sorted(os.listdir(layout["outside"])), sorted(os.listdir(layout["sibling"]))) == (
        outside_listing
    )


async def test_a_symlink_swapped_in_mid_call_is_never_followed(
    manager: McpManager, layout: dict[str, Path]
) -> None:
    swap = layout["root"] / "swap"
    staged = layout["root"] / "staged"
    staged.mkdir()
    (staged / "canary.txt").write_text("inside copy\n")
    stop = threading.Event()
    flips: list[int] = []

    def flip() -> None:  # 'swap' is a symlink out of the root, then a real folder, in turn
        while not stop.is_set():
            try:
                os.symlink(layout["outside"], swap)
                os.unlink(swap)
                os.rename(staged, swap)
                os.rename(swap, staged)
            except OSError:  # write_file made 'swap' a folder of its own in between: reset
                with contextlib.suppress(OSError):
                    if swap.is_symlink():
                        swap.unlink()
                    elif swap.is_dir():
                        shutil.rmtree(swap, ignore_errors=True)
                    if not staged.exists():
                        staged.mkdir()
                        (staged / "canary.txt").write_text("inside copy\n")
                flips.append(1)

    watch = OpenWatch(layout["outside"])
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    seen: set[str] = set()
    try:
        for index in range(200):
            tool = ("read_file", "write_file", "list_dir", "stat")[index % 4]
            path = "swap" if tool == "list_dir" else "swap/canary.txt"
            refused, content = await attempt(manager, tool, path)
            assert SECRET not in content
            seen.add("refused" if refused else "ok")
    finally:
        stop.set()
        flipper.join(5)
        events = watch.drain()
        watch.close()
    assert (layout["outside"] / "canary.txt").read_text() == SECRET
    assert not (layout["outside"] / "new.txt").exists()
    assert [e for e in events if e[1] in ("", "canary.txt")] == []
    assert flipper.is_alive() is False
    assert "refused" in seen  # the race was really run into


async def test_legitimate_operations_inside_the_root_succeed(
    manager: McpManager, layout: dict[str, Path]
) -> None:
    ok = [
        ("write_file", {"path": "new/deep/file.txt", "content": "hello\nworld\n"}),
        ("read_file", {"path": "new/deep/file.txt"}),
        ("read_file", {"path": "./notes.txt"}),
        ("read_file", {"path": "dir//a.txt"}),
        ("list_dir", {"path": "."}),
        ("list_dir", {}),
        ("list_dir", {"path": "dir"}),
        ("stat", {"path": "notes.txt"}),
        ("stat", {"path": "."}),
        ("stat", {"path": "inner_ok"}),
        ("write_file", {"path": "notes.txt", "content": "replaced"}),
        ("write_file", {"path": "name with spaces & ünïcode.md", "content": "x"}),
        ("read_file", {"path": "name with spaces & ünïcode.md"}),
        ("write_file", {"path": "100%.txt", "content": "percent sign without escape"}),
    ]
    for tool, arguments in ok:
        result = await manager.call("workspace", tool, arguments, workspace=KEY)
        assert not result.is_error, (tool, arguments, result.content)
    read = await manager.call("workspace", "read_file", {"path": "new/deep/file.txt"},
                              workspace=KEY)  # fmt: skip
    assert read.content == "hello\nworld\n"
    listing = json.loads((await manager.call("workspace", "list_dir", {}, workspace=KEY)).content)
    kinds = {e["name"]: e["type"] for e in listing["entries"]}
    assert kinds["dir"] == "directory"
    assert kinds["link_out"] == "symlink"
    assert (
        json.loads(
            (await manager.call("workspace", "stat", {"path": "inner_ok"}, workspace=KEY)).content
        )["type"]
        == "symlink"
    )
    assert (layout["root"] / "notes.txt").read_text() == "replaced"


async def test_each_workspace_is_its_own_folder(
    manager: McpManager, layout: dict[str, Path]
) -> None:
    await manager.call("workspace", "write_file", {"path": "a.txt", "content": "one"},
                       workspace="other")  # fmt: skip
    mine = await manager.call("workspace", "read_file", {"path": "a.txt"}, workspace=KEY)
    assert mine.is_error
    bad = await manager.call("workspace", "read_file", {"path": "a.txt"}, workspace="../task1")
    assert bad.is_error
    none = await manager.call("workspace", "read_file", {"path": "a.txt"})
    assert none.is_error
    assert "no workspace" in none.content


@pytest.mark.parametrize(
    "path", ["../x", "/x", "a\\b", "%2e%2e", "a\x00b", "a/../b", "x" * 2000, "\x07bell"]
)
def test_paths_are_refused_before_touching_the_disk(path: str) -> None:
    with pytest.raises(PathRefused):
        split_relative(path)


def test_a_hard_link_to_a_file_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text(SECRET)
    folder = ConfinedFolder(tmp_path / "root")
    os.link(outside, folder.root / "hard.txt")
    with pytest.raises(PathRefused, match="hard links"):
        folder.read("hard.txt")
    with pytest.raises(PathRefused, match="hard links"):
        folder.write("hard.txt", b"pwned")
    assert outside.read_text() == SECRET


def test_fifos_and_devices_are_not_opened(tmp_path: Path) -> None:
    folder = ConfinedFolder(tmp_path / "root")
    os.mkfifo(folder.root / "pipe")
    with pytest.raises(PathRefused, match="regular file"):
        folder.read("pipe")
    with pytest.raises(PathRefused):
        folder.write("pipe", b"x")
