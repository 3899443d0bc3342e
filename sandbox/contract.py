"""Procore's published API description as an executable contract.

``sandbox/openapi/`` holds, unedited, the catalog entries and per-operation files of the
operations the sandbox serves (derived from Procore's ``combined_OAS.json``; see its README).
This module answers three questions against them:

- ``find_operation``: which documented operation does ``METHOD /concrete/path`` name? Literal
  segments beat ``{param}`` ones, so ``/rest/v1.0/vendors/sync`` is the sync operation, not
  "show vendor 'sync'".
- ``validate_request``: is the call one Procore documents (operation exists, path and query
  parameters declared, required ones present, values of the declared type) with a body that
  validates against ``requestBody.schema``? The schemas never say ``additionalProperties:
  false`` and Procore silently ignores unknown fields, so a misspelt field would vanish without
  a trace; we therefore also report every body property the schema does not declare, at any
  depth where the schema lists properties (``vendor.*``, ``updates[].*``, ``bidding.*``).
- ``validate_response``: does a body match ``responses[status].schema`` when there is one? 2xx
  statuses the operation does not document are reported too (a create must answer 201).

Deliberate loosenings, each for a known gap between the derived files and Procore's API; all
else is checked as published:

- where the derivation could not resolve a type it wrote the placeholder ``{"type": "object",
  "description": "(nested object)"}`` (for example the items of the vendor sync's ``trade_ids``,
  which the create operation types as integers). Those placeholders are read as "any value";
- an enum whose only value is a sentence starting "Any value" (``uom``: "Any value present in
  the Company list of Units of Measure") is read as "any string";
- parameters whose descriptions say "You must supply either a company_id or project_id" are
  both marked required; either one satisfies both;
- the items of a Sync Action (``PATCH .../sync`` with ``updates[]``) may carry ``id``: Procore's
  matching table (reference §4.0) works on ``id`` for every sync, though a few derived item
  schemas (purchase orders, commitment lines) leave it out;
- an integer parameter may hold a UUID: Resource Planning (workforce-planning v2) names its
  people and projects by UUID, while their ``person_id`` and ``project_id`` are typed integer;
- a body property the schema requires counts as declared even where its ``properties`` omit it
  (updating a Resource Planning project requires ``group_ids`` and does not declare it);
- responses may carry ``null`` for any attribute: Procore's serializers show unset attributes as
  ``null`` and the derived schemas dropped the ``nullable`` marks (they survive only in a few
  enums, such as a project's ``flag``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator

PLACEHOLDER = {"type": "object", "description": "(nested object)"}
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EITHER = re.compile(r"supply either an? (\w+) or (\w+)")
QueryValue = str | list[str]


class Violation(NamedTuple):
    """A contract breach seen by the sandbox; kept in ``app.state.contract_violations``."""

    method: str
    path: str
    message: str


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    spec: dict[str, Any]

    def parameters(self, location: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.spec.get("parameters", []) if p.get("in") == location}


# --- loading ---------------------------------------------------------------------------------


def _read_json(*parts: str) -> Any:
    node = resources.files("sandbox").joinpath("openapi", *parts)
    return json.loads(node.read_text(encoding="utf-8"))


@cache
def operations() -> tuple[Operation, ...]:
    """Every operation in the sandbox's copy of the catalog."""
    return tuple(
        Operation(
            operation_id=entry["operationId"],
            method=entry["method"],
            path=entry["path"],
            spec=_read_json("endpoints", f"{entry['operationId']}.json"),
        )
        for entry in _read_json("catalog.json")
    )


# --- matching --------------------------------------------------------------------------------


def _match(template: str, path: str) -> dict[str, str] | None:
    """Path parameters if ``path`` fits ``template``, else None."""
    wanted, given = template.strip("/").split("/"), path.strip("/").split("/")
    if len(wanted) != len(given):
        return None
    params: dict[str, str] = {}
    for pattern, segment in zip(wanted, given, strict=True):
        if pattern.startswith("{") and pattern.endswith("}"):
            if not segment:
                return None
            params[pattern[1:-1]] = segment
        elif pattern != segment:
            return None
    return params


def _resolve(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    candidates = [
        (operation, params)
        for operation in operations()
        if operation.method == method.upper() and (params := _match(operation.path, path)) is not None
    ]
    if not candidates:
        return None
    # The most specific template wins: fewest parameters, i.e. most literal segments.
    return min(candidates, key=lambda candidate: len(candidate[1]))


def find_operation(method: str, path: str) -> Operation | None:
    resolved = _resolve(method, path)
    return resolved[0] if resolved else None


def query_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, QueryValue]:
    """Query pairs as a dict; a repeated name (``filters[id][]=1&filters[id][]=2``) gives a list."""
    result: dict[str, QueryValue] = {}
    for name, value in pairs:
        if name not in result:
            result[name] = value
        else:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return result


# --- parameters ------------------------------------------------------------------------------


def _scalar_problem(schema: dict[str, Any], value: str) -> str | None:
    kind = schema.get("type")
    if kind == "integer" and not value.lstrip("-").isdigit() and not UUID_TEXT.fullmatch(value):
        return f"{value!r} is not an integer"
    if kind == "boolean" and value not in ("true", "false"):
        return f"{value!r} is not a boolean"
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']}"
    return None


def _alternatives(declared: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Parameter name -> the names any of which satisfies it ("supply either a X or Y")."""
    alternatives: dict[str, set[str]] = {}
    for name, parameter in declared.items():
        if match := EITHER.search(parameter.get("description", "")):
            alternatives[name] = set(match.groups()) | {name}
    return alternatives


def _parameter_problems(
    location: str, declared: dict[str, dict[str, Any]], given: dict[str, QueryValue]
) -> list[str]:
    alternatives = _alternatives(declared)
    problems = [
        f"{location} parameter {name!r} is required"
        for name, parameter in declared.items()
        if parameter.get("required") and not (alternatives.get(name, {name}) & given.keys())
    ]
    for name, value in given.items():
        if name not in declared:
            problems.append(f"{location} parameter {name!r} is not declared")
            continue
        schema = declared[name].get("schema", {})
        item_schema = schema.get("items", {}) if schema.get("type") == "array" else schema
        for item in value if isinstance(value, list) else [value]:
            if (problem := _scalar_problem(item_schema, item)) is not None:
                problems.append(f"{location} parameter {name!r}: {problem}")
    return problems


# --- bodies ----------------------------------------------------------------------------------


def _sentence_enum(schema: dict[str, Any]) -> bool:
    choices = schema.get("enum")
    return isinstance(choices, list) and len(choices) == 1 and str(choices[0]).startswith("Any value")


def _loosen(schema: Any) -> Any:
    """Copy of ``schema`` with the derivation's placeholders read as "any" (see the docstring)."""
    if isinstance(schema, dict):
        if schema == PLACEHOLDER:
            return {}
        if _sentence_enum(schema):
            schema = {key: value for key, value in schema.items() if key != "enum"}
        return {key: _loosen(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_loosen(item) for item in schema]
    return schema


def _nullable(schema: Any) -> Any:
    """Copy of a response schema in which every typed value may also be ``null``."""
    if isinstance(schema, list):
        return [_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: _nullable(value) for key, value in schema.items()}
    if isinstance(schema.get("type"), str):
        copied["type"] = [schema["type"], "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        copied["enum"] = [*schema["enum"], None]
    # "properties" maps names to schemas: its keys are not schema keywords.
    if isinstance(schema.get("properties"), dict):
        copied["properties"] = {name: _nullable(value) for name, value in schema["properties"].items()}
    return copied


@cache
def request_schema(operation_id: str) -> dict[str, Any]:
    """The operation's request body schema as the contract reads it (see the docstring)."""
    operation = next(operation for operation in operations() if operation.operation_id == operation_id)
    schema = _loosen(operation.spec["requestBody"].get("schema") or {})
    items = schema.get("properties", {}).get("updates", {}).get("items", {})
    if operation.path.endswith("/sync") and "properties" in items and "id" not in items["properties"]:
        items["properties"]["id"] = {"type": "integer", "description": "Procore's matching table (§4.0)"}
    return schema


def _where(path: Sequence[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


@cache
def _validator(operation_id: str, part: str) -> Draft202012Validator:
    """The validator of one schema of an operation: ``request`` or a response status."""
    if part == "request":
        return Draft202012Validator(request_schema(operation_id))
    spec = next(operation.spec for operation in operations() if operation.operation_id == operation_id)
    return Draft202012Validator(_nullable(_loosen(spec["responses"][part]["schema"])))


def _schema_problems(prefix: str, validator: Draft202012Validator, instance: Any) -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda error: list(map(str, error.absolute_path)))
    return [f"{prefix}{_where(error.absolute_path)}: {error.message}" for error in errors]


def _undeclared(where: str, schema: dict[str, Any], instance: Any) -> list[str]:
    """Properties the schema does not declare, wherever it declares properties at all."""
    problems: list[str] = []
    if isinstance(instance, dict) and "properties" in schema:
        declared = schema["properties"]
        for name, value in instance.items():
            if name in schema.get("required", ()) and name not in declared:
                continue
            if name not in declared:
                problems.append(f"{where}: property {name!r} is not declared by Procore's schema")
            else:
                problems += _undeclared(f"{where}.{name}", declared[name], value)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            problems += _undeclared(f"{where}[{index}]", schema["items"], item)
    return problems


def _body_problems(operation: Operation, body: Any) -> list[str]:
    request_body = operation.spec.get("requestBody")
    if request_body is None:
        return [] if body in (None, b"", "", {}) else ["the operation takes no request body"]
    if body is None:
        return ["a request body is required"] if request_body.get("required") else []
    if not request_body.get("schema"):
        return []
    validator = _validator(operation.operation_id, "request")
    schema = request_schema(operation.operation_id)
    return _schema_problems("body", validator, body) + _undeclared("body", schema, body)


# --- public checks ---------------------------------------------------------------------------


def validate_request(method: str, path: str, query: dict[str, QueryValue], body: Any) -> list[str]:
    """Every way the request departs from Procore's description; empty when it conforms."""
    resolved = _resolve(method, path)
    if resolved is None:
        return [f"{method.upper()} {path} is not an operation in Procore's catalog"]
    operation, path_params = resolved
    problems = _parameter_problems("path", operation.parameters("path"), dict(path_params))
    problems += _parameter_problems("query", operation.parameters("query"), query)
    return problems + _body_problems(operation, body)


def validate_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """Every way the response departs from the documented response for ``status``."""
    operation = find_operation(method, path)
    if operation is None:
        return [f"{method.upper()} {path} is not an operation in Procore's catalog"]
    documented = operation.spec.get("responses", {}).get(str(status))
    if documented is None:
        # Error statuses are often undocumented (Procore's 422 and 429 rarely are); a success
        # status must be the documented one, e.g. 201 for a create.
        if 200 <= status < 300:
            return [f"status {status} is not documented for {operation.operation_id}"]
        return []
    if not documented.get("schema"):
        return []
    return _schema_problems(f"response {status}", _validator(operation.operation_id, str(status)), body)
