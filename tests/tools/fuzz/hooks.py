"""Schemathesis hooks of the fuzz (loaded through ``hooks`` in schemathesis.toml).

One hook, ``filter_failure``, and it drops one kind of report only: "schema-valid
request rejected" (ST202, the ``positive_data_acceptance`` check) where the 422 names
a rule that depends on something no JSON Schema can state. Each rule is matched by the
problem type and the start of the detail the server words it with, so any other 422 of
the same operation (a length, a pattern, an enum the document states) still fails the
run, as does every other check. schemathesis prints each dropped report ("dropped by
`filter_failure`"), so none is hidden.

- ``cursor is not one this API returned``: a cursor is an opaque token; only one the
  API issued is valid, and generated ones are not.
- ``plan: ...``: a plan's cross-step rules (unique keys, dependencies that name
  another step, no cycle, one final step), stated in the PlanStepIn description.
- ``webhook URL host ... resolves to`` / ``points at``: a webhook host must be (or
  resolve to) a public address, a rule about the network, not the string; inside the
  fuzz's namespace names resolve only through /etc/hosts (localhost and the like).
- ``model '...' is not configured``: the models a deployment allows are its settings
  (CHATSYS_MODEL, role models, fallbacks), not the document's. schemathesis.toml gives
  the fuzz's own model to generated bodies; the coverage phase does not use it.
- ``webhook URL host '...' is not a valid host name``: the DNS rules (labels of 1 to 63
  letters, digits, ``-`` and ``_``, at most 253 characters in all), which the
  document's ``format: uri`` does not carry.

- the text rule inside a JSON object (``metadata``, tool ``arguments``): the document
  states it for the object's keys and, as a ``not``, for its values one level down
  (SDK generators cannot read the recursive schema that would state every level, and
  schemathesis' generator does not always honour a ``not``); deeper, the rule is the
  same, unstated. Dropped only when every refused part is the rule's (``text_nul``,
  ``text_control``, ``text_surrogate``) inside a JSON object;
  tests/integration/test_openapi_contract.py checks that document and server agree on
  the levels that are stated.

And reports that were never about schema-valid data: the stateful phase infers links
by field name and passes along what it finds, e.g. a delivery's ``webhook_id`` (its
Standard Webhooks message id, ``msg_...``) as the ``{webhook_id}`` of
``/v1/webhooks/{webhook_id}`` (an endpoint's UUID), or an audit entry's ``task_id``
(null) as a ``{task_id}``. A path value that is not the UUID the document requires is
refused as documented; such a report is dropped only when every refused part is a path
parameter whose value is not a UUID. The links the document declares (``api/links.py``)
make no such mistake.
"""

from __future__ import annotations

import atexit
import json
import sys
import uuid
from collections import Counter
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

_INVALID_INPUT = "urn:chatsys:problem:invalid-input"
_VALIDATION = "urn:chatsys:problem:validation-error"
_BEYOND_THE_SCHEMA = {  # the start of the detail -> the reason, for the count below
    "cursor is not one this API returned": "opaque cursor",
    "plan: ": "plan's cross-step rules",
    "model '": "configured models",
    "webhook URL points at ": "webhook address",
}
_IN_THE_DETAIL = {  # ...and for details that start with "webhook URL host '...'"
    " resolves to ": "webhook address",
    " is not a valid host name": "webhook host name",
}
_dropped: Counter[str] = Counter()


def _problem(status: int, content: bytes) -> dict[str, Any] | None:
    if status != 422:
        return None
    try:
        problem: Any = json.loads(content)
    except ValueError:
        return None
    return problem if isinstance(problem, dict) else None


def beyond_the_schema(problem: dict[str, Any]) -> str | None:
    """Which rule of the module doc a 422 names, or None."""
    if problem.get("type") != _INVALID_INPUT:
        return None
    detail = str(problem.get("detail", ""))
    if detail.startswith("model '") and " is not configured" not in detail:
        return None
    if detail.startswith("webhook URL host "):
        return next((why for part, why in _IN_THE_DETAIL.items() if part in detail), None)
    found = (why for start, why in _BEYOND_THE_SCHEMA.items() if detail.startswith(start))
    return next(found, None)


_RULE = {"text_nul", "text_control", "text_surrogate"}
_INSIDE_AN_OBJECT = ("the key [", "the value at [")


def deep_in_a_json_object(problem: dict[str, Any]) -> bool:
    """Every refused part is the text rule, inside a JSON object (the module doc)."""
    errors = problem.get("errors") or []
    return (
        problem.get("type") == _VALIDATION
        and bool(errors)
        and all(
            e.get("type") in _RULE and str(e.get("message", "")).startswith(_INSIDE_AN_OBJECT)
            for e in errors
        )
    )


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def linked_non_uuid(problem: dict[str, Any], path_parameters: dict[str, Any] | None) -> bool:
    """Every refused part is a path parameter sent with a value that is not a UUID (a
    value an inferred link carried, the module doc)."""
    errors = problem.get("errors") or []
    if problem.get("type") != _VALIDATION or not errors:
        return False
    sent = path_parameters or {}
    for error in errors:
        where = str(error.get("location", ""))
        name = where.removeprefix("path.")
        if where == name or name not in sent or _is_uuid(sent[name]):
            return False
    return True


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False drops the report; see the module doc for which ones."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    problem = _problem(response.status_code, response.content)
    if problem is None:
        return True
    why = "linked value not a UUID" if linked_non_uuid(problem, case.path_parameters) else None
    why = why or ("text rule inside a JSON object" if deep_in_a_json_object(problem) else None)
    why = why or beyond_the_schema(problem)
    if why is None:
        return True
    _dropped[why] += 1
    return False


@atexit.register
def _say_what_was_dropped() -> None:
    if _dropped:
        counts = ", ".join(f"{why}: {n}" for why, n in _dropped.most_common())
        print(f"fuzz hooks: dropped ST202 reports by reason: {counts}", file=sys.stderr)
