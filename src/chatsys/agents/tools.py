"""Built-in tools every agent may use (MCP servers add more through the same port)."""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chatsys.agents.profiles import tool_allowed
from chatsys.domain.llm.ports import ToolResult, ToolSpec
from chatsys.domain.planning.planner import parse_role

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def evaluate_arithmetic(expression: str) -> float:
    """Evaluate + - * / // % ** on numbers only (no names, calls or attributes)."""
    if len(expression) > 200:
        raise ValueError("expression longer than 200 characters")

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported syntax: {type(node).__name__}")

    value = walk(ast.parse(expression, mode="eval"))
    return float(value)


CURRENT_TIME = ToolSpec(
    "chatsys__current_time",
    "The current date and time in UTC, ISO 8601.",
    {"type": "object", "properties": {}, "additionalProperties": False},
)
CALCULATE = ToolSpec(
    "chatsys__calculate",
    "Evaluate an arithmetic expression exactly (+ - * / // % ** and parentheses).",
    {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (3 + 4) * 12"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
)


class BuiltinTools:
    """A ``ToolInvoker`` over the built-in tools, filtered by each role's allow-list."""

    def __init__(self) -> None:
        self._specs = {spec.name: spec for spec in (CURRENT_TIME, CALCULATE)}

    def _allowed(self, role: str, name: str) -> bool:
        return tool_allowed(parse_role(role), name)

    async def tools_for(self, role: str, *, workspace: str | None = None) -> Sequence[ToolSpec]:
        return [s for n, s in self._specs.items() if self._allowed(role, n)]

    async def call(
        self,
        role: str,
        name: str,
        arguments: Mapping[str, Any],
        *,
        workspace: str | None = None,
        approved: bool = False,
    ) -> ToolResult:
        """The built-in tools are harmless and always ``auto``."""
        if name not in self._specs or not self._allowed(role, name):
            return ToolResult(f"unknown tool '{name}'", is_error=True)
        if name == CURRENT_TIME.name:
            return ToolResult(datetime.now(UTC).isoformat(timespec="seconds"))
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            return ToolResult("'expression' must be a string", is_error=True)
        try:
            return ToolResult(
                json.dumps({"expression": expression, "value": evaluate_arithmetic(expression)})
            )
        except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as exc:
            return ToolResult(f"cannot evaluate: {exc}", is_error=True)
