"""What our tools write into the checkout stays out of git (defect 7).

Real git answers: ``git check-ignore`` on a path inside each cache (at the root and
deeper down, where a tool run from a subfolder puts it), and ``git ls-files`` for
anything already committed under one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import PurePosixPath

import pytest

from tests.support import ROOT

# Folders a tool creates in the folder it runs in (or the repo root).
CACHE_DIRS = [
    ".schemathesis",  # schemathesis
    ".hypothesis",  # hypothesis example database
    ".pytest_cache",
    ".mypy_cache",
    ".dmypy",  # dmypy status folder
    ".ruff_cache",
    ".import_linter_cache",  # lint-imports
    "htmlcov",  # coverage html
    "node_modules",  # npm / playwright
    "playwright-report",  # playwright test reports
    "test-results",  # playwright traces and screenshots
    ".benchmarks",  # pytest-benchmark
    ".tox",
    ".nox",
    ".chatsys",  # chatsys dev's default CHATSYS_DATA_DIR
    "__pycache__",
]
# Files a tool creates.
CACHE_FILES = [
    ".coverage",
    ".coverage.host.1234.XyZ",  # parallel coverage data
    "coverage.xml",
    ".dmypy.json",
]


GIT = shutil.which("git")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    assert GIT is not None
    return subprocess.run(
        [GIT, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
    )


@pytest.fixture(scope="module", autouse=True)
def _a_git_checkout() -> None:
    if GIT is None or git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout")


def cache_paths() -> list[str]:
    paths = []
    for name in CACHE_DIRS:
        paths += [f"{name}/", f"{name}/some/file", f"tests/{name}/file", f"bench/x/{name}/y"]
    for name in CACHE_FILES:
        paths += [name, f"tests/{name}"]
    return paths


def test_every_tool_cache_is_ignored() -> None:
    not_ignored = [path for path in cache_paths() if git("check-ignore", "-q", path).returncode]
    assert not_ignored == [], f"not git-ignored: {not_ignored}"


def test_nothing_under_a_tool_cache_is_tracked() -> None:
    listed = git("ls-files", "-z")
    assert listed.returncode == 0, listed.stderr
    caches = set(CACHE_DIRS)
    tracked = [
        path
        for path in listed.stdout.split("\0")
        if path
        and (
            caches & set(PurePosixPath(path).parts[:-1])
            or PurePosixPath(path).name in CACHE_FILES
            or PurePosixPath(path).name.startswith(".coverage.")
        )
    ]
    assert tracked == [], f"tracked inside a tool cache: {tracked}"
    ignored_but_tracked = git("ls-files", "-ci", "--exclude-standard")
    assert ignored_but_tracked.stdout.split() == [], "tracked but ignored"
