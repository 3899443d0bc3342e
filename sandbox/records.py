"""One engine for every resource: create, update and the sync action, independent of HTTP.

A ``Resource`` (declared in ``sandbox.resources``) is data: its fields, the field groups that
must be unique, and a few rules no field can say alone. This module enforces all of it the same
way for every resource, in this order, and writes nothing unless everything passes:

1. cast the known writable attributes of the request (unknown ones are ignored, as Procore
   ignores them; the contract check is what reports them);
2. merge them over the stored record (or the defaults, on create) and check the result:
   required fields, lengths, fields that may not change after create, references to records
   that must exist, unique groups, ``origin_id`` unique per company, then the resource's rules;
3. let the resource derive what it derives (``prepare``: a line's WBS code, its amount), write,
   and run ``after_create`` (a new project's seeded records).

``sync`` applies Procore's matching table item by item (see ``sync_item``) and never fails as a
whole: a bad item lands in ``errors`` with the attributes it was sent with and its Rails-style
errors, the good ones in ``entities``.

A ``Context`` says where a request writes: the company, the scope (company or project) and the
attributes the request's scope fixes for every item (a contract's id for its lines, a sub job
for cost codes). Records outside it are invisible: an id from another project is "not found".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sandbox.fields import BLANK, CANNOT_CHANGE, DOES_NOT_EXIST, TAKEN, Field, cast, is_blank, length_problem
from sandbox.store import COMPANY_KINDS, Record, Store
from sandbox.validation import Errors, cast_string

Outcome = tuple[Record | None, Errors]
STAMPS = ("id", "created_at", "updated_at")
NOT_FOUND_BY_ID = "Entity with this ID not found"


@dataclass(frozen=True)
class Context:
    store: Store
    company_id: int
    scope_id: int  # the company for company-level kinds, the project for the others
    fixed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unique:
    """``fields[0]`` is unique among the scope's records sharing the values of ``fields[1:]``."""

    fields: tuple[str, ...]
    casefold: bool = False


# (record as it would be stored, the stored record or None on create, context) -> errors
Rule = Callable[[Record, Record | None, Context], Errors]
# (record as it will be stored, the stored record or None, the cast changes, context); may write
Prepare = Callable[[Record, Record | None, Record, Context], None]


@dataclass(frozen=True)
class Resource:
    kind: str
    label: str  # Procore's model name, for "Couldn't find <label> with 'id'=..."
    fields: tuple[Field, ...]
    unique: tuple[Unique, ...] = ()
    rules: tuple[Rule, ...] = ()
    normalize: Callable[[Record], Record] | None = None  # reshape cast changes before merging
    prepare: Prepare | None = None
    after_create: Callable[[Record, Context], None] | None = None

    @cached_property
    def by_name(self) -> dict[str, Field]:
        return {declared.name: declared for declared in self.fields}


def merge_errors(*parts: Errors) -> Errors:
    merged: Errors = {}
    for part in parts:
        for name, messages in part.items():
            merged.setdefault(name, []).extend(messages)
    return merged


def changed(merged: Record, existing: Record | None) -> set[str]:
    """Fields whose value differs from the stored record (every field, on create)."""
    if existing is None:
        return {name for name in merged if name not in STAMPS}
    return {name for name, value in merged.items() if name not in STAMPS and existing.get(name) != value}


# --- checking --------------------------------------------------------------------------------


def cast_changes(resource: Resource, attrs: Mapping[str, Any]) -> tuple[Record, Errors]:
    """The resource's writable fields among ``attrs``, cast; unknown keys are ignored."""
    changes: Record = {}
    errors: Errors = {}
    for name, value in attrs.items():
        declared = resource.by_name.get(name)
        if declared is None:
            continue
        stored, problem = cast(declared, value)
        if problem is not None:
            errors.setdefault(name, []).append(problem)
        else:
            changes[name] = stored
    if changes.get("origin_id") == "":
        changes["origin_id"] = None  # a blank origin_id unlinks, it is not a key
    if resource.normalize is not None:
        changes = resource.normalize(changes)
    return changes, errors


def reference_scope(kind: str, context: Context) -> int:
    return context.company_id if kind in COMPANY_KINDS else context.scope_id


def exists(context: Context, kind: str, record_id: int) -> bool:
    return context.store.record(kind, reference_scope(kind, context), record_id) is not None


def _field_errors(
    resource: Resource, context: Context, merged: Record, existing: Record | None, skip: set[str]
) -> Errors:
    errors: Errors = {}
    moved = changed(merged, existing)
    for declared in resource.fields:
        if declared.name in skip:
            continue
        value = merged.get(declared.name)
        problems: list[str] = []
        if declared.required and is_blank(value):
            problems.append(BLANK)
        if (problem := length_problem(declared, value)) is not None:
            problems.append(problem)
        if declared.create_only and existing is not None and declared.name in moved:
            problems.append(CANNOT_CHANGE)
        if declared.references and value is not None and declared.name in moved:
            if not exists(context, declared.references, value):
                problems.append(DOES_NOT_EXIST)
        if problems:
            errors[declared.name] = problems
    return errors


def _comparable(value: Any, casefold: bool) -> Any:
    return value.casefold() if casefold and isinstance(value, str) else value


def _unique_errors(resource: Resource, context: Context, merged: Record) -> Errors:
    errors: Errors = {}
    own_id = merged.get("id")
    for rule in resource.unique:
        name, *within = rule.fields
        value = merged.get(name)
        if is_blank(value):
            continue
        wanted = _comparable(value, rule.casefold)
        for other in context.store.scan(resource.kind, context.scope_id):
            same_group = all(other.get(key) == merged.get(key) for key in within)
            if other["id"] != own_id and same_group and _comparable(other.get(name), rule.casefold) == wanted:
                errors.setdefault(name, []).append(TAKEN)
                break
    origin_id = merged.get("origin_id")
    if origin_id is not None:
        holder = context.store.by_origin_id(resource.kind, context.company_id, origin_id)
        if holder is not None and holder["id"] != own_id:
            errors.setdefault("origin_id", []).append(TAKEN)
    return errors


def check(
    resource: Resource,
    context: Context,
    merged: Record,
    existing: Record | None,
    skip: set[str] | None = None,
) -> Errors:
    """Every error of the record as it would be stored; empty when it may be written. Fields in
    ``skip`` already failed to cast, so their value is not the one sent and is not checked."""
    field_errors = _field_errors(resource, context, merged, existing, skip or set())
    errors = merge_errors(field_errors, _unique_errors(resource, context, merged))
    for rule in resource.rules:
        errors = merge_errors(errors, rule(merged, existing, context))
    return errors


def merged_record(
    resource: Resource, context: Context, existing: Record | None, attrs: Mapping[str, Any]
) -> tuple[Record, Record, Errors]:
    """``(record as it would be stored, cast changes, errors)`` for one create or update."""
    changes, cast_errors = cast_changes(resource, attrs)
    if existing is None:
        base = {declared.name: declared.default for declared in resource.fields}
        base.update(context.fixed)
    else:
        base = existing
    merged = {**base, **changes}
    return (
        merged,
        changes,
        merge_errors(cast_errors, check(resource, context, merged, existing, set(cast_errors))),
    )


# --- writing ---------------------------------------------------------------------------------


def find(resource: Resource, context: Context, record_id: int) -> Record | None:
    """The record with ``record_id`` inside the context (scope and fixed attributes)."""
    record = context.store.record(resource.kind, context.scope_id, record_id)
    if record is None or any(record.get(key) != value for key, value in context.fixed.items()):
        return None
    return record


def save(resource: Resource, context: Context, existing: Record | None, attrs: Mapping[str, Any]) -> Outcome:
    """Create (``existing`` None) or update one record; nothing is written when there are errors."""
    merged, changes, errors = merged_record(resource, context, existing, attrs)
    if errors:
        return None, errors
    if resource.prepare is not None:
        resource.prepare(merged, existing, changes, context)
    store = context.store
    if existing is None:
        record = store.insert(
            resource.kind, context.scope_id, {k: v for k, v in merged.items() if k not in STAMPS}
        )
        if resource.after_create is not None:
            resource.after_create(record, context)
        return record, {}
    diff = {name: merged[name] for name in changed(merged, existing)}
    return store.update(resource.kind, context.scope_id, existing["id"], diff), {}


def create(resource: Resource, context: Context, attrs: Mapping[str, Any]) -> Outcome:
    return save(resource, context, None, attrs)


def update(resource: Resource, context: Context, record_id: int, attrs: Mapping[str, Any]) -> Outcome:
    """Update a record the caller has found with ``find``."""
    existing = find(resource, context, record_id)
    assert existing is not None, "update() needs an existing record"
    return save(resource, context, existing, attrs)


def as_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def sync_item(resource: Resource, context: Context, item: Mapping[str, Any]) -> Outcome:
    """Procore's matching table for one sync item.

    id given: update that record (its origin_id too, if given), or error if there is none.
    origin_id only: update the record holding it, or create one with it; an origin_id held by a
    record outside this request's scope (another project of the company) is taken.
    neither: create (with no origin_id).
    """
    if item.get("id") is not None:
        record_id = as_id(item["id"])
        existing = find(resource, context, record_id) if record_id is not None else None
        if existing is None:
            return None, {"id": [NOT_FOUND_BY_ID]}
        return save(resource, context, existing, item)
    origin_id, _ = cast_string(item.get("origin_id"))
    holder = context.store.by_origin_id(resource.kind, context.company_id, origin_id) if origin_id else None
    if holder is not None:
        existing = find(resource, context, holder["id"])
        if existing is None:
            return None, {"origin_id": [TAKEN]}
        return save(resource, context, existing, item)
    return create(resource, context, item)


def sync(
    resource: Resource, context: Context, updates: list[Any], view: Callable[[Record], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Apply every item independently; answer ``{"entities": [...], "errors": [...]}``."""
    entities: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for item in updates:
        if not isinstance(item, dict):
            failures.append({"item": item, "errors": {"base": ["must be an object of attributes"]}})
            continue
        record, errors = sync_item(resource, context, item)
        if record is not None:
            entities.append(view(record))
        else:
            failures.append({**item, "errors": errors})
    return {"entities": entities, "errors": failures}
