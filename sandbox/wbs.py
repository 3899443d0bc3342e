"""Work breakdown structure codes: one per combination of segment items in a project.

A WBS code names a combination of segment items of the company's WBS pattern; a budget line,
an SOV line or a direct cost line points at one through ``wbs_code_id``. The sandbox company's
pattern is Procore's default one, with three fixed segments:

====================  ====================  ==============================================
``segment_id``        segment               ``segment_item_id`` is
====================  ====================  ==============================================
1 (``SUB_JOB``)       Sub Job (optional)    the id of a sub job of the project
2 (``COST_CODE``)     Cost Code (required)  the id of a cost code of the project
3 (``COST_TYPE``)     Cost Type (optional)  the id of a line item type of the company
====================  ====================  ==============================================

These ids are the sandbox's convention. Real Procore companies have their own segment ids
(``GET /rest/v1.0/companies/{id}/work_breakdown_structure/segments``), so the project reads them
from settings instead of assuming these numbers.

``bulk_create`` upserts: the same combination gives the same code back, never a duplicate, which
is what makes resending a batch safe. ``flat_code`` joins the items' codes with ".", the sub job
first: "01.02-300.L" (sub job 01, cost code 02-300, cost type L) or "02-300.L"; a cost type with
no code shows its name. Codes and names are read when the code is shown, so renaming a cost code
renames every WBS code that uses it, as in Procore.
"""

from __future__ import annotations

from typing import Any

from sandbox.fields import DOES_NOT_EXIST
from sandbox.records import Context, as_id
from sandbox.store import Record, Store
from sandbox.validation import Errors

SUB_JOB = 1
COST_CODE = 2
COST_TYPE = 3
# segment id -> (the kind its items are, the reference field that names one in errors)
SEGMENTS: dict[int, tuple[str, str]] = {
    SUB_JOB: ("sub_jobs", "sub_job_id"),
    COST_CODE: ("cost_codes", "cost_code_id"),
    COST_TYPE: ("line_item_types", "line_item_type_id"),
}
WBS_PATTERN_ID = 562_949_953_421_312  # the sandbox company's one pattern
NOT_A_SEGMENT = "is not a segment of the company's WBS pattern (1 sub job, 2 cost code, 3 cost type)"
DELIMITER = "."
ACTIVE = "active"

Combination = tuple[tuple[int, int], ...]  # ((segment_id, segment_item_id), ...) by segment id


def parse_segment_items(value: Any, context: Context) -> tuple[Combination, Errors]:
    """The combination a ``segment_items`` list names, or per-entry errors."""
    if not isinstance(value, list) or not value:
        return (), {"segment_items": ["can't be blank"]}
    chosen: dict[int, int] = {}
    errors: Errors = {}
    for entry in value:
        segment_id = as_id(entry.get("segment_id")) if isinstance(entry, dict) else None
        item_id = as_id(entry.get("segment_item_id")) if isinstance(entry, dict) else None
        if segment_id not in SEGMENTS:
            errors.setdefault("segment_items", []).append(f"segment_id {segment_id} {NOT_A_SEGMENT}")
        elif item_id is None:
            errors.setdefault("segment_items", []).append(
                f"segment_item_id of segment {segment_id} is not an id"
            )
        elif segment_id in chosen:
            errors.setdefault("segment_items", []).append(f"segment {segment_id} is given twice")
        else:
            chosen[segment_id] = item_id
    if COST_CODE not in chosen and "segment_items" not in errors:
        errors["segment_items"] = [f"must include a cost code (segment_id {COST_CODE})"]
    for segment_id, item_id in chosen.items():
        kind, name = SEGMENTS[segment_id]
        scope = context.company_id if kind == "line_item_types" else context.scope_id
        if context.store.record(kind, scope, item_id) is None:
            errors.setdefault(name, []).append(DOES_NOT_EXIST)
    return tuple(sorted(chosen.items())), errors


def combination_of(record: Record) -> Combination:
    return tuple((item["segment_id"], item["segment_item_id"]) for item in record["segment_items"])


def find(store: Store, project_id: int, combination: Combination) -> Record | None:
    for record in store.scan("wbs_codes", project_id):
        if combination_of(record) == combination:
            return dict(record)
    return None


def upsert(context: Context, combination: Combination, description: str | None = None) -> Record:
    """The project's code for ``combination``, created if new; a new description replaces the old."""
    store = context.store
    existing = find(store, context.scope_id, combination)
    if existing is not None:
        if description is not None and description != existing["description"]:
            return store.update("wbs_codes", context.scope_id, existing["id"], {"description": description})
        return existing
    items = [{"segment_id": segment_id, "segment_item_id": item_id} for segment_id, item_id in combination]
    fields = {"segment_items": items, "description": description, "status": ACTIVE}
    return store.insert("wbs_codes", context.scope_id, fields)


def for_cost_code(context: Context, cost_code_id: int, line_item_type_id: int | None) -> Record:
    """The code for a cost code (in its sub job, if any) and cost type, created if new."""
    cost_code = context.store.record("cost_codes", context.scope_id, cost_code_id)
    assert cost_code is not None, "for_cost_code() needs an existing cost code"
    chosen = {COST_CODE: cost_code_id}
    if cost_code.get("sub_job_id") is not None:
        chosen[SUB_JOB] = cost_code["sub_job_id"]
    if line_item_type_id is not None:
        chosen[COST_TYPE] = line_item_type_id
    return upsert(context, tuple(sorted(chosen.items())))


def segment_item_ids(record: Record) -> dict[int, int]:
    return dict(combination_of(record))


def parts(store: Store, company_id: int, project_id: int, record: Record) -> list[tuple[int, Record]]:
    """The records the code's segment items name, in segment order."""
    found: list[tuple[int, Record]] = []
    for segment_id, item_id in combination_of(record):
        kind, _ = SEGMENTS[segment_id]
        item = store.record(kind, company_id if kind == "line_item_types" else project_id, item_id)
        if item is not None:
            found.append((segment_id, item))
    return found


def _code_of(segment_id: int, item: Record) -> str:
    if segment_id == COST_TYPE:
        return item.get("csv_import_code") or item.get("name") or ""
    return item.get("code") or ""


def view(store: Store, company_id: int, project_id: int, record: Record) -> dict[str, Any]:
    named = parts(store, company_id, project_id, record)
    segment_items = [
        {
            "segment_id": segment_id,
            "segment_item_id": item["id"],
            "code": _code_of(segment_id, item),
            "name": item.get("name"),
        }
        for segment_id, item in named
    ]
    return {
        "id": record["id"],
        "flat_code": DELIMITER.join(_code_of(segment_id, item) for segment_id, item in named),
        "flat_name": DELIMITER.join(item.get("name") or "" for _, item in named),
        "description": record.get("description"),
        "status": record["status"],
        "segment_items": segment_items,
        "wbs_pattern_id": WBS_PATTERN_ID,
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }


def short_view(
    store: Store, company_id: int, project_id: int, wbs_code_id: int | None
) -> dict[str, Any] | None:
    """``{id, flat_code, description}``, how lines and budget lines show their WBS code."""
    record = store.record("wbs_codes", project_id, wbs_code_id) if wbs_code_id is not None else None
    if record is None:
        return None
    full = view(store, company_id, project_id, record)
    return {"id": full["id"], "flat_code": full["flat_code"], "description": full["description"]}


def bulk_create(context: Context, entries: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """``{"entities": [...], "errors": [...]}``: each entry upserted or failed on its own."""
    entities: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            failures.append({"item": entry, "errors": {"base": ["must be an object with segment_items"]}})
            continue
        combination, errors = parse_segment_items(entry.get("segment_items"), context)
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            errors.setdefault("description", []).append("is invalid")
        if errors:
            failures.append({**entry, "errors": errors})
            continue
        record = upsert(context, combination, description)
        entities.append(view(context.store, context.company_id, context.scope_id, record))
    return {"entities": entities, "errors": failures}
