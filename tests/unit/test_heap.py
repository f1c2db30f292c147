"""The server processes freeze their start-up heap, so a full collection walks only
what came after start-up, and collect the young generation less often
(``chatsys.infra.heap``). Run in a child process: freezing
the test process' own heap would outlive the test."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json, weakref
import chatsys.bootstrap.api, chatsys.bootstrap.worker  # what server processes import
from chatsys.infra.heap import settle_heap

before = len(gc.get_objects())
settle_heap()
walked = len(gc.get_objects())  # what a full collection walks now

class Node:
    pass

node = Node()
node.me = node  # a cycle made after start-up is still collected
ref = weakref.ref(node)
del node
gc.collect()
print(json.dumps({"before": before, "walked": walked, "frozen": gc.get_freeze_count(),
                  "cycle_freed": ref() is None, "young": gc.get_threshold()[0]}))
"""


def test_a_full_collection_no_longer_walks_the_start_up_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["before"] > 50_000, figures
    assert figures["frozen"] >= figures["before"] * 0.9, figures
    assert figures["walked"] < 1_000, figures
    assert figures["cycle_freed"] is True
    assert figures["young"] == 50_000
