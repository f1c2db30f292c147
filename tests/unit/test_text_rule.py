"""The text rule (chatsys.api.text) on its own: what it refuses, what it keeps."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field, ValidationError

from chatsys.api.text import JsonObject, Line, LineOrNone, Text, printable


class Sample(BaseModel):
    text: Text = ""
    line: LineOrNone = Field(default=None, max_length=5)
    data: JsonObject = Field(default_factory=dict)


def refusal(raw: str) -> tuple[str, str, str]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(json.loads(raw))
    (error,) = caught.value.errors()
    return ".".join(map(str, error["loc"])), error["type"], error["msg"]


def test_free_text_keeps_line_breaks_tabs_and_astral_characters() -> None:
    # A surrogate pair in JSON is one character (U+1F600), not a lone surrogate.
    kept = Sample.model_validate(json.loads('{"text": "a\\n\\tb\\r\\u001b[0m \\ud83d\\ude00"}'))
    assert kept.text == "a\n\tb\r\x1b[0m \U0001f600"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"text": "a\\u0000"}', ("text", "text_nul", "must not contain NUL (U+0000)")),
        ('{"text": "a\\ud800"}', ("text", "text_surrogate",
          "must be valid Unicode: U+D800 at character 1 is an unpaired surrogate")),
        ('{"text": "\\udfff"}', ("text", "text_surrogate",
          "must be valid Unicode: U+DFFF at character 0 is an unpaired surrogate")),
        ('{"line": "a\\tb"}', ("line", "text_control",
          "must be one line without control characters: U+0009 at character 1")),
        ('{"line": "\\u0085"}', ("line", "text_control",
          "must be one line without control characters: U+0085 at character 0")),
        ('{"data": {"a\\u0000": 1}}', ("data", "text_nul",
          "the key ['a\\x00']: must not contain NUL (U+0000)")),
        ('{"data": {"a": [1, {"b": "\\ud800"}]}}', ("data", "text_surrogate",
          "the value at ['a'][1]['b']: must be valid Unicode: U+D800 at character 0 is an "
          "unpaired surrogate")),
    ],
)  # fmt: skip
def test_refusals_name_the_field_and_the_character(
    raw: str, expected: tuple[str, str, str]
) -> None:
    assert refusal(raw) == expected


def test_the_constraints_beside_the_rule_keep_their_own_messages() -> None:
    assert refusal('{"line": "abcdef"}') == (
        "line", "string_too_long", "String should have at most 5 characters",
    )  # fmt: skip
    assert Sample(line=None).line is None


def test_a_deeply_nested_object_is_walked_without_recursion() -> None:
    deep: object = "\x00"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate({"data": {"k": deep}})
    assert caught.value.errors()[0]["type"] == "text_nul"


def test_printable_escapes_what_cannot_be_shown_or_encoded() -> None:
    assert printable("a\x00b\ud800c\u00e9\n") == "a\\u0000b\\ud800c\u00e9\\u000a"
    assert printable("a\x00b\ud800").encode() == b"a\\u0000b\\ud800"


def test_a_line_is_still_a_string() -> None:
    class Named(BaseModel):
        name: Line

    with pytest.raises(ValidationError) as caught:
        Named.model_validate({"name": 5})
    assert caught.value.errors()[0]["type"] == "string_type"
