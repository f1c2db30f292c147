"""The one text rule for every string a client sends: request bodies, query, path and
header parameters, ``/v1/ws`` frames.

- ``Text``: free text (a task's input, a message, a description). NUL (U+0000) and
  unpaired surrogates (U+D800..U+DFFF) are refused; line breaks, tabs and any other
  character are kept.
- ``Line``: one line (a title, a name, an id, a URL, a cursor): the same, and no control
  character either (C0, DEL, C1; so no ``\\n``, ``\\t`` or ``\\r``).
- ``JsonObject``, ``TextMap``, ``LineMap``: a JSON object whose keys (``Line``) and every
  nested string value (``Text``, ``Line`` for ``LineMap``) follow the rule.

Neither NUL nor a lone surrogate can be stored by Postgres or encoded as UTF-8; refused
here, they answer 422 naming the field, before any use case runs (nothing is written).

Why a ``BeforeValidator`` (not an ``AfterValidator``): pydantic's own ``str`` check
already refuses a lone surrogate with a generic "unable to parse raw data as a unicode
string" before an after-validator would see it, and lets NUL through; running first, the
rule names both in its own words (error types ``text_nul``, ``text_surrogate``,
``text_control``) and checks a JSON object's keys before pydantic could put a bad key into
an error's location. The constraints stated beside it (``max_length``, ``pattern``) still
apply, after it, with pydantic's own messages, as long as the rule is not wrapped inside
a union: an optional field is ``TextOrNone = Field(max_length=...)``, not
``Text | None`` (pydantic would then check the length generically, "Value should have at
most 200 items").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "LINE",
    "TEXT",
    "JsonObject",
    "Line",
    "LineMap",
    "LineOrNone",
    "Text",
    "TextMap",
    "TextOrNone",
    "printable",
    "text_problem",
]

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, *, one_line: bool) -> tuple[str, str] | None:
    """What is wrong with ``value`` under the rule, as (error type, message), or None."""
    if "\x00" in value:
        return "text_nul", "must not contain NUL (U+0000)"
    if not value.isascii() and (found := _SURROGATE.search(value)) is not None:
        return (
            "text_surrogate",
            f"must be valid Unicode: U+{ord(found.group()):04X} at character {found.start()} "
            "is an unpaired surrogate",
        )
    if one_line and (found := _CONTROL.search(value)) is not None:
        return (
            "text_control",
            f"must be one line without control characters: U+{ord(found.group()):04X} "
            f"at character {found.start()}",
        )
    return None


def printable(text: str) -> str:
    """``text`` with control characters and surrogates escaped (``\\u0000``): safe to put
    in an error message, a log line or a UTF-8 answer."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _refuse(kind: str, message: str, where: str = "") -> PydanticCustomError:
    if not where:
        return PydanticCustomError(kind, message)
    # The path goes in the context: a template is formatted, the client's text is not.
    return PydanticCustomError(kind, "{where}: " + message, {"where": where})


def _rule(*, one_line: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str) and (problem := text_problem(value, one_line=one_line)):
            raise _refuse(*problem)
        return value  # not a string: the type's own validation answers

    return check


def _object_rule(*, one_line_values: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        pending: list[tuple[str, Any]] = [("", value)]
        while pending:  # a loop, not recursion: a deeply nested body cannot overflow it
            path, node = pending.pop()
            if isinstance(node, dict):
                for key, item in node.items():
                    at = f"{path}[{key!r}]"  # repr escapes what is not printable
                    if isinstance(key, str) and (problem := text_problem(key, one_line=True)):
                        raise _refuse(problem[0], problem[1], f"the key {at}")
                    pending.append((at, item))
            elif isinstance(node, list):
                pending.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
            elif isinstance(node, str) and (
                problem := text_problem(node, one_line=one_line_values)
            ):
                raise _refuse(problem[0], problem[1], f"the value at {path}")
        return value

    return check


TEXT = BeforeValidator(_rule(one_line=False))
LINE = BeforeValidator(_rule(one_line=True))
"""The rule as metadata, for parameters: ``Annotated[str | None, Query(max_length=200),
LINE]`` (after the ``Query``, so that its constraints keep pydantic's own messages)."""

Text = Annotated[str, TEXT]
Line = Annotated[str, LINE]
TextOrNone = Annotated[str | None, TEXT]  # not ``Text | None``: see the module doc
LineOrNone = Annotated[str | None, LINE]
JsonObject = Annotated[dict[str, Any], BeforeValidator(_object_rule(one_line_values=False))]
TextMap = Annotated[dict[str, str], BeforeValidator(_object_rule(one_line_values=False))]
LineMap = Annotated[dict[str, str], BeforeValidator(_object_rule(one_line_values=True))]
