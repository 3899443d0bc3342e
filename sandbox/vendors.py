"""Company vendors: create, update and the sync (batch upsert) action, independent of HTTP.

Each function returns ``(vendor, errors)``: the vendor as Procore shows it and no errors, or
``None`` and Rails-style errors, with nothing written. ``sync`` applies Procore's matching rules
item by item (see ``sync_item``) and never fails as a whole; a bad item lands in ``errors`` with
the attributes it was sent with, the good ones in ``entities``.

``origin_id`` is unique per company: a second vendor may not take one already held, and the only
way to change a vendor's origin_id is to address it by ``id``.
"""

from __future__ import annotations

from typing import Any

from sandbox.store import Store
from sandbox.validation import (
    BOOLEAN_FIELDS,
    STRING_FIELDS,
    Errors,
    cast_string,
    record_errors,
    writable_changes,
)

Outcome = tuple[dict[str, Any] | None, Errors]

BOOLEAN_DEFAULTS: dict[str, bool] = {field: field == "is_active" for field in BOOLEAN_FIELDS}
# Read-only attributes of Procore's extended view that cost nothing to show: the sandbox has no
# ERP tool, contacts, child vendors or Procore-network connections.
READ_ONLY: dict[str, Any] = {
    "synced_to_erp": False,
    "is_connected": False,
    "company_vendor": True,
    "contact_count": 0,
    "children_count": 0,
}
NOT_FOUND_BY_ID = "Entity with this ID not found"


def represent(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record in Procore's extended view: every attribute present, id first."""
    shown: dict[str, Any] = {"id": record["id"]}
    shown.update({field: record.get(field) for field in STRING_FIELDS})
    shown.update({field: record.get(field, default) for field, default in BOOLEAN_DEFAULTS.items()})
    shown.update(READ_ONLY)
    shown.update(created_at=record["created_at"], updated_at=record["updated_at"])
    return shown


def _changes(attrs: dict[str, Any]) -> tuple[dict[str, Any], Errors]:
    changes, errors = writable_changes(attrs)
    if changes.get("origin_id") == "":
        changes["origin_id"] = None  # a blank origin_id unlinks, it is not a key
    return changes, errors


def _origin_taken(store: Store, company_id: int, record: dict[str, Any], own_id: int | None) -> Errors:
    origin_id = record.get("origin_id")
    holder = store.vendor_by_origin_id(company_id, origin_id) if origin_id is not None else None
    if holder is not None and holder["id"] != own_id:
        return {"origin_id": ["has already been taken"]}
    return {}


def _all_errors(*parts: Errors) -> Errors:
    merged: Errors = {}
    for part in parts:
        for field, messages in part.items():
            merged.setdefault(field, []).extend(messages)
    return merged


def create(store: Store, company_id: int, attrs: dict[str, Any]) -> Outcome:
    changes, cast_errors = _changes(attrs)
    # Stored records carry every writable field, so readers of the store never miss a key.
    record = {**dict.fromkeys(STRING_FIELDS), **BOOLEAN_DEFAULTS, **changes}
    taken = _origin_taken(store, company_id, record, None)
    errors = _all_errors(cast_errors, record_errors(record), taken)
    if errors:
        return None, errors
    return represent(store.insert_vendor(company_id, record)), {}


def update(store: Store, company_id: int, vendor_id: int, attrs: dict[str, Any]) -> Outcome:
    """Update an existing vendor (the caller has looked it up)."""
    existing = store.vendor(company_id, vendor_id)
    assert existing is not None, "update() needs an existing vendor"
    changes, cast_errors = _changes(attrs)
    merged = {**existing, **changes}
    taken = _origin_taken(store, company_id, merged, vendor_id)
    errors = _all_errors(cast_errors, record_errors(merged), taken)
    if errors:
        return None, errors
    return represent(store.update_vendor(company_id, vendor_id, changes)), {}


def _as_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def sync_item(store: Store, company_id: int, item: dict[str, Any]) -> Outcome:
    """Procore's matching table for one sync item.

    id given: update that vendor (its origin_id too, if given), or error if there is none.
    origin_id only: update the vendor holding it, or create one with it.
    neither: create (with no origin_id).
    """
    if item.get("id") is not None:
        vendor_id = _as_id(item["id"])
        if vendor_id is None or store.vendor(company_id, vendor_id) is None:
            return None, {"id": [NOT_FOUND_BY_ID]}
        return update(store, company_id, vendor_id, item)
    origin_id, _ = cast_string(item.get("origin_id"))
    holder = store.vendor_by_origin_id(company_id, origin_id) if origin_id else None
    if holder is not None:
        return update(store, company_id, holder["id"], item)
    return create(store, company_id, item)


def sync(store: Store, company_id: int, updates: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Apply every item independently; answer ``{"entities": [...], "errors": [...]}``."""
    entities: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for item in updates:
        if not isinstance(item, dict):
            failures.append({"item": item, "errors": {"base": ["must be an object of vendor attributes"]}})
            continue
        entity, errors = sync_item(store, company_id, item)
        if entity is not None:
            entities.append(entity)
        else:
            failures.append({**item, "errors": errors})
    return {"entities": entities, "errors": failures}
