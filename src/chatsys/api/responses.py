"""The bases and annotations of the API's answer models, and what they promise in the
document.

- ``Answer``: a model the API builds itself (a task, a page, a frame). Every field it
  always sends is ``required`` in the document, defaults included
  (``json_schema_serialization_defaults_required``), so a generated SDK types it as
  present; a field that can be null says so (``T | None``), and one that is sometimes
  left out says that (``Omitted[T]``).
- ``DocumentedAs(T)``: a field the document describes as ``T`` while the server holds
  something cheaper. ``Annotated[str, DocumentedAs(Role)]``: one of a domain enum's
  values, a plain ``str`` at runtime and the enum's own component in the document (the
  domain made the value from its enum, so checking it again buys nothing, and an enum
  field costs about 1.5 us to validate and serialize: some 16 are in a task, ~6 us per
  read). The event page's items: the stored JSON as it is, documented as the typed
  ``TaskEvent`` union (``api/tasks/events.py``).
- ``Shape``: a JSON object the domain writes (``Analysis.as_dict()``, an event's data),
  described field by field. It keeps keys it does not know (``extra="allow"``): what
  the domain sends is never dropped on the way out, and a read never fails on a stored
  object a newer domain wrote. The tests validate real answers and events against the
  document with extra keys refused (``tests/integration/test_typed_document.py``), so
  a key the domain gains without its model fails there, not silently in production.
  The document says ``additionalProperties: true`` for these: clients should ignore
  keys they do not know.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema, core_schema

__all__ = ["Answer", "DocumentedAs", "Omitted", "Shape"]

T = TypeVar("T")


class Answer(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Shape(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)


def _is_none(value: object) -> bool:
    return value is None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # "absent", not a null the server would send


Omitted = Annotated[
    T | SkipJsonSchema[None],
    Field(default=None, exclude_if=_is_none, json_schema_extra=_no_default),
]
"""A field left out of the JSON (and not ``required`` in the document) when it is None;
never sent as null: ``step: Omitted[str]``."""


class DocumentedAs:
    """``Annotated[str, DocumentedAs(Role, name="AgentRole")]``: see the module doc. Only
    the document changes; the tests check that what is sent matches it. ``name`` names
    the component where the type's own name is taken (two domains have a ``Role``)."""

    def __init__(self, documented: Any, *, name: str | None = None) -> None:
        schema = TypeAdapter(documented).core_schema
        if name is not None:  # the schema under its own ref: a component of that name
            schema = {**schema, "ref": name}
        self._name = name
        self._ref = schema.get("ref")
        # As a definition and a reference to it, the type is one shared component ($ref)
        # (an enum, a model) wherever it is used, not a copy in each place.
        self._schema = (
            schema
            if self._ref is None
            else core_schema.definitions_schema(
                core_schema.definition_reference_schema(self._ref), [schema]
            )
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(self._schema)
        if self._name is not None:
            handler.resolve_ref_schema(found)["title"] = self._name
        return found
