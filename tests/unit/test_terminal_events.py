"""Every terminal event goes through ``finish_task`` (which records the task's webhook
deliveries in the same transaction): no other domain code appends one."""

from __future__ import annotations

import ast
from pathlib import Path

import chatsys.domain

TERMINAL = {"TASK_SUCCEEDED", "TASK_FAILED", "TASK_CANCELLED"}


def _appends_terminal_event(call: ast.Call) -> bool:
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "append"):
        return False
    return any(
        isinstance(node, ast.Attribute) and node.attr in TERMINAL
        for arg in call.args
        for node in ast.walk(arg)
    )


def test_no_domain_module_appends_a_terminal_event_but_finish_task() -> None:
    root = Path(chatsys.domain.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _appends_terminal_event(node):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
