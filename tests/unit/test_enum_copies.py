"""Every place that spells out the values of a domain enum says exactly what the enum
says (issue 12: one of each).

The API's ``Literal`` names stay spelled out (mypy checks them, and OpenAPI shows them
inline), the CLI names its choices without importing the domain (it starts fast), and
the MCP bridge takes the domain enum itself; each is compared with the enum here.
"""

from __future__ import annotations

import argparse
from enum import StrEnum
from typing import Any, get_args

import pytest

from chatsys.api.mcp_bridge import build_bridge
from chatsys.api.tasks.schemas import TaskStatusName
from chatsys.api.webhooks.schemas import DeliveryStatusName
from chatsys.cli import build_parser
from chatsys.domain.access.model import Role
from chatsys.domain.tasks.model import TaskStatus
from chatsys.domain.webhooks.model import DeliveryStatus


def values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.mark.parametrize(
    ("copy", "enum"),
    [(TaskStatusName, TaskStatus), (DeliveryStatusName, DeliveryStatus)],
    ids=["TaskStatusName", "DeliveryStatusName"],
)
def test_the_api_literals_name_every_value_in_order(copy: Any, enum: type[StrEnum]) -> None:
    assert list(get_args(copy)) == values(enum)


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise AssertionError(f"no subcommand {name}")


def test_the_cli_offers_every_key_role() -> None:
    create = _subcommand(_subcommand(build_parser(), "keys"), "create")
    [role] = [a for a in create._actions if a.dest == "role"]
    assert role.choices is not None
    assert list(role.choices) == values(Role)


async def test_the_mcp_bridge_filters_by_every_task_status() -> None:
    tools = {tool.name: tool for tool in await build_bridge("http://127.0.0.1:9").list_tools()}
    schema = tools["list_tasks"].input_schema
    [ref] = [s["$ref"] for s in schema["properties"]["status"]["anyOf"] if "$ref" in s]
    named = schema["$defs"][ref.rsplit("/", 1)[-1]]
    assert named["enum"] == values(TaskStatus)
    assert "awaiting_approval" in named["enum"]  # defect: the bridge's own copy lacked it
