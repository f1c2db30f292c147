"""Reading the app's OpenAPI document in tests: validators for its schemas (strict: a key
the document does not name is an error), its operations' answer schemas, and every
example it gives."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

REF = "#/components/schemas/"
JSON = "application/json"

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)  # RFC 3339 as the server writes it, Z included
    return "T" in value and parsed.tzinfo is not None


def _closed(node: Any) -> None:
    """Every object schema that names its properties refuses any other key."""
    if isinstance(node, dict):
        if "properties" in node and node.get("type", "object") == "object":
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)


class Document:
    """One OpenAPI document and validators of its schemas."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.schemas: dict[str, Any] = spec["components"]["schemas"]
        self._strict = copy.deepcopy(spec["components"])
        _closed(self._strict["schemas"])

    def validator(self, schema: dict[str, Any], *, strict: bool = True) -> Draft202012Validator:
        """``schema`` (``{"$ref": ...}`` or inline) with the document's references; strict:
        the objects the document describes refuse keys it does not name."""
        components = self._strict if strict else self.spec["components"]
        return Draft202012Validator({**schema, "components": components}, format_checker=FORMATS)

    def check(self, schema: dict[str, Any], instance: Any, *, strict: bool = True) -> None:
        """``instance`` is valid for ``schema``; a union on a discriminator is checked
        against the one branch the instance names (clearer errors than ``oneOf``'s)."""
        union = self.resolve(schema).get("discriminator")
        if union is not None and isinstance(instance, dict):
            tag = instance.get(union["propertyName"])
            assert tag in union["mapping"], f"{tag!r} is not one of {sorted(union['mapping'])}"
            schema = {"$ref": union["mapping"][tag]}
        errors = sorted(self.validator(schema, strict=strict).iter_errors(instance), key=str)
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors[:5]
        )

    def component(self, name: str) -> dict[str, str]:
        assert name in self.schemas, name
        return {"$ref": REF + name}

    def answer_schema(self, method: str, path: str, status: int) -> dict[str, Any]:
        """The JSON schema the document gives for this operation's answer."""
        responses = self.spec["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, (method, path, status, sorted(responses))
        content = responses[str(status)].get("content", {})
        media = next((m for m in content if m in (JSON, "application/problem+json")), None)
        assert media is not None, (method, path, status, list(content))
        schema: dict[str, Any] = content[media]["schema"]
        return schema

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].removeprefix(REF)]
        return schema

    def examples(self) -> Iterator[tuple[str, dict[str, Any], Any]]:
        """(where, the schema it is an example of, the example) for every example: a
        schema's ``examples``, and a media type's ``example`` / ``examples``."""
        pending: list[tuple[str, Any]] = [("", self.spec)]
        while pending:
            where, node = pending.pop()
            if isinstance(node, list):
                pending.extend((f"{where}/{i}", v) for i, v in enumerate(node))
                continue
            if not isinstance(node, dict):
                continue
            is_media = "schema" in node and isinstance(node["schema"], dict)
            if is_media:  # a media type object (or a parameter)
                if "example" in node:
                    yield f"{where}/example", node["schema"], node["example"]
                for name, item in node.get("examples", {}).items():
                    yield f"{where}/examples/{name}", node["schema"], item["value"]
            elif isinstance(node.get("examples"), list) and not where.endswith("/properties"):
                schema = {k: v for k, v in node.items() if k != "examples"}
                for i, value in enumerate(node["examples"]):
                    yield f"{where}/examples/{i}", schema, value
            for key, value in node.items():
                if key not in ("example", "examples") or where.endswith("/properties"):
                    pending.append((f"{where}/{key}", value))

    def exemplary(self, schema: dict[str, Any]) -> Any:
        """A value of ``schema`` made of its examples: every property that has an example
        somewhere inside it, and the required ones (smallest valid values)."""
        schema = self.resolve(schema)
        options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
        if not options:
            return None
        schema = self.resolve(options[0])
        if schema.get("examples"):
            return schema["examples"][0]
        for key in ("const", "default"):
            if schema.get(key) is not None:
                return schema[key]
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            required = set(schema.get("required", []))
            return {
                name: self.exemplary(prop)
                for name, prop in schema.get("properties", {}).items()
                if name in required or self.has_examples(prop)
            }
        if kind == "array":
            count = max(1, schema.get("minItems", 0))
            return [self.exemplary(schema["items"])] * count
        if kind == "string":
            if schema.get("format") == "uuid":
                return str(uuid.UUID(int=1))
            return "x" * max(1, schema.get("minLength", 1))
        if kind in ("integer", "number"):
            return schema.get("minimum", 1)
        if kind == "boolean":
            return False
        return {}

    def has_examples(self, schema: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
        ref = schema.get("$ref")
        if ref is not None:
            return ref not in seen and self.has_examples(self.resolve(schema), seen | {ref})
        if schema.get("examples"):
            return True
        children: list[Any] = [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]
        if isinstance(schema.get("items"), dict):
            children.append(schema["items"])
        return any(self.has_examples(c, seen) for c in children if isinstance(c, dict))
