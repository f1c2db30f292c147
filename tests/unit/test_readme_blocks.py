"""Every code block of the README's streaming, webhook and MCP sections is run by a test:
it carries a ``<!-- readme-test: NAME -->`` marker and a test asks for NAME."""

from __future__ import annotations

import pytest

from tests import readme


def test_every_block_of_the_tested_sections_carries_a_marker() -> None:
    missing = set(readme.TESTED_SECTIONS) - set(readme.headings())
    assert missing == set(), "a tested section was renamed: update TESTED_SECTIONS"
    unmarked = [
        f"README.md:{b.line} ({b.section})"
        for b in readme.blocks()
        if b.section in readme.TESTED_SECTIONS and b.marker is None
    ]
    assert unmarked == [], "blocks no test runs; mark them and run them in a test"


def test_markers_are_unique_and_each_is_asked_for_by_a_test() -> None:
    markers = [b.marker for b in readme.blocks() if b.marker is not None]
    assert len(markers) == len(set(markers)), markers
    asked = readme.asked_for()
    assert sorted(set(markers) - set(asked)) == [], "marked blocks that no test runs"
    assert sorted(set(asked) - set(markers)) == [], f"tests ask for missing blocks: {asked}"
    assert {"streaming-curl", "streaming-follow", "mcp-servers"} <= set(markers)


def test_the_parser_ties_a_marker_to_the_next_block_only() -> None:
    text = (
        "## One\n\n<!-- readme-test: first -->\n```sh\necho 1\n```\n\n"
        "<!-- readme-test: lost -->\nSome prose.\n\n```python\nprint(2)\n```\n"
        "### Two\n~~~json\n{}\n~~~\n"
    )
    found = readme.parse(text)
    assert [(b.section, b.language, b.marker, b.code) for b in found] == [
        ("One", "sh", "first", "echo 1\n"),
        ("One", "python", None, "print(2)\n"),
        ("Two", "json", None, "{}\n"),
    ]
    assert found[0].line == 4


def test_a_block_is_moved_to_another_port_only_if_it_names_the_default_address() -> None:
    block = readme.Block("S", "sh", "curl http://127.0.0.1:8000/x\n", 1, "m")
    assert block.on_port(5001) == "curl http://127.0.0.1:5001/x\n"
    elsewhere = readme.Block("S", "sh", "curl http://example.test/x\n", 1, "m")
    with pytest.raises(AssertionError, match=r"127\.0\.0\.1:8000"):
        elsewhere.on_port(5001)
