"""Generate the SDKs from the document that ``chatsys openapi`` writes, and check them.

``python -m tests.sdk.generate [--python] [--typescript] [OUT]`` (``make sdk``; both
when neither is named) writes ``OUT/openapi.json`` (default ``build/sdk``), then

- Python: the openapi-python-client package ``OUT/python/chatsys_client``, type-checked
  with mypy (strict, the project's settings);
- TypeScript: openapi-typescript's types ``tests/sdk/ts/generated/chatsys.ts`` for the
  openapi-fetch client, and ``tsc --strict --noEmit`` on them and ``tests/sdk/ts/src``
  (needs ``npm ci`` in ``tests/sdk/ts`` first: ``make sdk-ts`` does both).

tests/sdk generates the same in temporary folders and drives a live server with them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PACKAGE = "chatsys_client"
CONFIG = HERE / "openapi-python-client.yml"
TS = HERE / "ts"
TS_BIN = TS / "node_modules" / ".bin"
TS_TYPES = TS / "generated" / "chatsys.ts"


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment with no CHATSYS_* setting (the document a user gets) and
    this virtualenv first on PATH (the generator runs ruff on what it writes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _run(argv: list[str], **extra_env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=ROOT, env=_env(**extra_env), capture_output=True, text=True, check=False,
        timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def write_document(path: Path) -> Path:
    """``chatsys openapi -o path``, as a user would run it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([str(BIN / "chatsys"), "openapi", "-o", str(path)])
    return path


def generate_python(document: Path, out: Path) -> Path:
    """The client ``out/chatsys_client`` from the document (any generator warning
    fails); returns ``out``, the folder to import it from."""
    out.mkdir(parents=True, exist_ok=True)
    _run([
        str(BIN / "openapi-python-client"), "generate",
        "--path", str(document),
        "--meta", "none",
        "--config", str(CONFIG),
        "--output-path", str(out / PACKAGE),
        "--overwrite",
        "--fail-on-warning",
    ])  # fmt: skip
    return out


def type_check(out: Path, *modules: str) -> str:
    """mypy, strict as for the project (its pyproject settings), on the generated package
    and the given modules of ours that use it; returns mypy's report."""
    # A cache of its own: the project's (make lint) knows chatsys_client as missing.
    argv = [str(BIN / "python"), "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache" / "sdk")]
    argv += ["-p", PACKAGE]
    for module in modules:
        argv += ["-m", module]
    return _run(argv, MYPYPATH=str(out)).stdout.strip()


def generate_typescript(document: Path) -> Path:
    """openapi-typescript's types for the document, where the TypeScript program
    imports them (``tests/sdk/ts/generated/chatsys.ts``)."""
    # Request fields with a default are optional: openapi-typescript 7 would make them
    # required (its default-non-nullable also applies to request schemas in components).
    _run([str(TS_BIN / "openapi-typescript"), str(document), "-o", str(TS_TYPES),
          "--default-non-nullable=false"])  # fmt: skip
    return TS_TYPES


def compile_typescript(out: Path | None = None) -> None:
    """``tsc --strict`` on the TypeScript package: into ``out``, else ``--noEmit``."""
    emit = ["--outDir", str(out)] if out is not None else ["--noEmit"]
    _run([str(TS_BIN / "tsc"), "--strict", "-p", str(TS), *emit])


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.sdk.generate", description="Generate and check the SDKs."
    )
    parser.add_argument("out", nargs="?", default="build/sdk", help="default build/sdk")
    parser.add_argument("--python", action="store_true", help="the Python client")
    parser.add_argument("--typescript", action="store_true", help="the TypeScript client")
    args = parser.parse_args()
    both = not (args.python or args.typescript)
    out = (ROOT / args.out).resolve()
    document = write_document(out / "openapi.json")
    print(f"sdk: {document}")
    if args.python or both:
        started = time.monotonic()
        generate_python(document, out / "python")
        took = time.monotonic() - started
        print(f"sdk: python: {out / 'python' / PACKAGE} generated in {took:.1f} s")
        print(f"sdk: python: mypy: {type_check(out / 'python')}")
    if args.typescript or both:
        started = time.monotonic()
        generate_typescript(document)
        took = time.monotonic() - started
        print(f"sdk: typescript: {TS_TYPES.relative_to(ROOT)} generated in {took:.1f} s")
        started = time.monotonic()
        compile_typescript()
        took = time.monotonic() - started
        print(f"sdk: typescript: tsc --strict --noEmit: no errors ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
