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

The rule is stated in the OpenAPI document too, as a ``pattern`` on each string (and
``propertyNames`` on each object) unless a stricter pattern is given: clients, SDK
validators and fuzzers see what the server refuses. The patterns name code points by
``\\uXXXX``, which ECMA-262, Python and Rust regexes read alike. Unpaired surrogates
are not in them (a JavaScript regex without the ``u`` flag would then refuse every
character outside the BMP); no JSON encoder produces one by accident. ``NonBlankText``
and ``NonBlankLine`` state, besides, what their use cases refuse: a value that is empty
or all whitespace (``str.isspace``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import BeforeValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

__all__ = [
    "CONTROL_OR_SPACE",
    "LINE",
    "RULE_PATTERNS",
    "TEXT",
    "JsonObject",
    "Line",
    "LineMap",
    "LineOrNone",
    "NonBlankLine",
    "NonBlankLineOrNone",
    "NonBlankText",
    "Stated",
    "Text",
    "TextMap",
    "TextOrNone",
    "printable",
    "stated",
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


# The rule as regexes, for the document (see the module doc).
_NOT_NUL = "\\u0000"
_NOT_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
# What str.isspace() calls whitespace, spelled out (regex engines disagree on \s).
_SPACE = (
    "\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)


def _pattern(refused: str, *, non_blank: bool) -> str:
    if not non_blank:
        return f"^[^{refused}]*$"
    return f"^[^{refused}]*[^{refused}{_SPACE}][^{refused}]*$"


CONTROL_OR_SPACE = _NOT_CONTROL + _SPACE  # a regex class's body: no control, no space
TEXT_PATTERN = _pattern(_NOT_NUL, non_blank=False)
LINE_PATTERN = _pattern(_NOT_CONTROL, non_blank=False)
RULE_PATTERNS = tuple(
    _pattern(refused, non_blank=non_blank)
    for refused in (_NOT_NUL, _NOT_CONTROL)
    for non_blank in (False, True)
)  # the rule's own patterns, as the document shows them


def _strings(schema: JsonSchemaValue) -> list[JsonSchemaValue]:
    """The string schemas in ``schema`` (itself, or the options of ``X | None``)."""
    options = schema.get("anyOf", [schema])
    return [option for option in options if option.get("type") == "string"]


@dataclass(frozen=True, slots=True)
class _Stated:
    """Puts the rule's pattern into the JSON schema of what it annotates."""

    pattern: str
    keys: bool = False  # an object: the pattern is its keys' (``propertyNames``)
    values: str | None = None  # ...and this one its string values'

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        if self.keys:
            schema.setdefault("propertyNames", {"pattern": self.pattern})
            extra = schema.get("additionalProperties")
            if self.values is not None and isinstance(extra, dict):
                for option in _strings(extra):
                    option.setdefault("pattern", self.values)
            return schema
        for option in _strings(schema):
            option.setdefault("pattern", self.pattern)
        return schema


# A JSON object's values under the rule, for the document: any JSON value but a string
# with NUL or an object with a key that is not one line. Stated one level down, as a
# `not` (SDK generators read it as "any value"; openapi-python-client cannot read a
# recursive schema); deeper values follow the same rule, unstated.
_JSON_VALUES: dict[str, Any] = {
    "not": {
        "anyOf": [
            {"type": "string", "pattern": "\\u0000"},
            {
                "type": "object",
                "not": {"propertyNames": {"not": {"pattern": f"[{_NOT_CONTROL}]"}}},
            },
        ]
    }
}


@dataclass(frozen=True, slots=True)
class _JsonValues:
    """A JSON object's values, as the document states them (validation unchanged)."""

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema["additionalProperties"] = copy.deepcopy(_JSON_VALUES)
        return schema


@dataclass(frozen=True, slots=True)
class Stated:
    """Keywords for the document's string schema (each string option of ``X | None``)
    that state what a use case refuses with its own message, the rule's ``pattern``
    replaced: ``Annotated[Line, stated(pattern=STEP_KEY_PATTERN)]``. Validation is
    unchanged: the use case still answers, in its own words."""

    keywords: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        for option in _strings(schema):
            option.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.keywords})
        return schema


def stated(**keywords: Any) -> Stated:
    """``stated(pattern=...)``, ``stated(enum=[...])``, ``stated(format="uri")``."""
    return Stated(tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in keywords.items()))


@dataclass(frozen=True, slots=True)
class _Rule(GroupedMetadata):
    """The rule as one piece of metadata: it validates, and it states its pattern."""

    one_line: bool
    non_blank: bool = False

    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(_rule(one_line=self.one_line))
        refused = _NOT_CONTROL if self.one_line else _NOT_NUL
        yield _Stated(_pattern(refused, non_blank=self.non_blank))


TEXT = _Rule(one_line=False)
LINE = _Rule(one_line=True)
"""The rule as metadata, for parameters: ``Annotated[str | None, Query(max_length=200),
LINE]`` (after the ``Query``, so that its constraints keep pydantic's own messages)."""

Text = Annotated[str, TEXT]
Line = Annotated[str, LINE]
TextOrNone = Annotated[str | None, TEXT]  # not ``Text | None``: see the module doc
LineOrNone = Annotated[str | None, LINE]
NonBlankText = Annotated[str, _Rule(one_line=False, non_blank=True)]
NonBlankLine = Annotated[str, _Rule(one_line=True, non_blank=True)]
NonBlankLineOrNone = Annotated[str | None, _Rule(one_line=True, non_blank=True)]
JsonObject = Annotated[
    dict[str, Any],
    BeforeValidator(_object_rule(one_line_values=False)),
    _JsonValues(),
    _Stated(LINE_PATTERN, keys=True),
]
TextMap = Annotated[
    dict[str, str],
    BeforeValidator(_object_rule(one_line_values=False)),
    _Stated(LINE_PATTERN, keys=True, values=TEXT_PATTERN),
]
LineMap = Annotated[
    dict[str, str],
    BeforeValidator(_object_rule(one_line_values=True)),
    _Stated(LINE_PATTERN, keys=True, values=LINE_PATTERN),
]
