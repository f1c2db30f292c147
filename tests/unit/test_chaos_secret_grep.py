"""The chaos suite's secret grep finds each kind of leak and passes what the scrubber
masked (a grep that could find nothing would prove nothing)."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.stack import grep_logs


def test_the_grep_counts_each_leak_and_not_the_masked_values(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text(
        "\n".join(
            [
                '{"secret": "whsec_c2VjcmV0LXZhbHVl"}',  # leaks
                '{"secret": "whsec_***"}',
                "key csk_AbCdEfGhIjKl_9f8e7d6c5b4a and csk_AbCdEfGhIjKl_***",
                "ticket cst_Zm9vYmFyYmF6 then cst_***",
                "postgresql+asyncpg://chatsys:s3cr3t-pw@127.0.0.1:5432/db",
                "redis://:***@127.0.0.1:6379/0 http://127.0.0.1:8000/v1/tasks",
                "provider said sk-chaos-0123456789",
            ]
        )
    )
    (found,) = grep_logs("unit", [log], {"sk-chaos-0123456789", "short"})
    assert found.lines == 7
    assert found.hits == {
        "whsec_": 1,
        "cst_": 1,
        "csk_": 1,
        "URL password": 1,
        "configured secret": 1,
    }
    clean = tmp_path / "clean.log"
    clean.write_text('{"secret": "whsec_***", "url": "redis://:***@127.0.0.1:6379/0"}\n')
    (nothing,) = grep_logs("unit", [clean], {"sk-chaos-0123456789"})
    assert sum(nothing.hits.values()) == 0
