"""`make audit`: known vulnerabilities in the locked dependencies.

Runs pip-audit on requirements/dev.lock. Fails on any known vulnerability, and on a
lock that pins a release known to be malicious. When the advisory service cannot be
reached (a machine that sees only the package index), it says so plainly and how
many packages went unaudited; set CHATSYS_AUDIT_REQUIRED=1 to make that a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.lock"
# Releases that were compromised uploads: never allowed in a lock.
MALICIOUS = {("litellm", "1.82.7"), ("litellm", "1.82.8")}


def pinned(lock: Path) -> set[tuple[str, str]]:
    found = set()
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ \\;]+)", line)
        if match:
            found.add((match.group(1).lower().replace("_", "-"), match.group(2)))
    return found


def main() -> int:
    bad = pinned(LOCK) & MALICIOUS
    if bad:
        print(f"audit: the lock pins known-malicious releases: {sorted(bad)}", file=sys.stderr)
        return 1
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pip-audit")),
            "--disable-pip",
            "--no-deps",
            "--vulnerability-service",
            "pypi",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "-r",
            str(LOCK),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit failed:\n{done.stderr.strip()}", file=sys.stderr)
        return 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if d.get("skip_reason")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"audit: {dep['name']} {dep.get('version')}: {ids}", file=sys.stderr)
    if vulnerable:
        return 1
    audited = len(deps) - len(skipped)
    print(f"audit: {audited} of {len(deps)} locked packages audited, no known vulnerabilities")
    if skipped:
        print(
            f"audit: WARNING: {len(skipped)} packages could not be audited (the advisory "
            f"service did not answer for them: {skipped[0]['skip_reason']})",
            file=sys.stderr,
        )
        if os.environ.get("CHATSYS_AUDIT_REQUIRED") == "1":
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
