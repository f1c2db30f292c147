"""JSON-ready values."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]
