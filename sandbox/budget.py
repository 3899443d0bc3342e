"""The original budget: the budget line sync, the budget view and its detail rows.

``POST /rest/v1.0/budget_line_items/sync`` is not a Sync Action like the others (§4.0 of the
reference): it answers a *plain array* of the lines as stored, budget lines have no
``origin_id``, and Procore documents 422 for it. So the sandbox treats the call as one unit:
every item is checked first and, if any fails, the whole call is 422 with Rails-style errors
(an unknown ``wbs_code_id`` is named in its message) and nothing is written.

A project holds at most one budget line per WBS code. An item without ``id`` whose
``wbs_code_id`` already has a line updates that line instead of adding one; that is how an ERP
without origin_id stays idempotent. An item with ``id`` updates that line (and may move it to a
WBS code no other line holds).

Lines are read through the project's one budget view ("Procore Standard Budget", seeded with
the project): one detail row per line, with the line's cost code, cost type (``category_id``)
and biller (the project, or the sub job of the WBS code).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox import views, wbs
from sandbox.fields import DOES_NOT_EXIST, TAKEN, money_text
from sandbox.records import NOT_FOUND_BY_ID, Context, as_id, merge_errors, merged_record
from sandbox.resources import BUDGET_LINE_ITEMS
from sandbox.store import Record
from sandbox.validation import Errors

KIND = BUDGET_LINE_ITEMS.kind


def _line_by_id(context: Context, value: Any) -> tuple[Record | None, Errors]:
    line_id = as_id(value)
    line = context.store.record(KIND, context.scope_id, line_id) if line_id is not None else None
    return (line, {}) if line is not None else (None, {"id": [f"{NOT_FOUND_BY_ID} ({value})"]})


def _line_of(context: Context, wbs_code_id: Any) -> Record | None:
    wanted = as_id(wbs_code_id)
    found = (line for line in context.store.scan(KIND, context.scope_id) if line["wbs_code_id"] == wanted)
    line = next(found, None)
    return dict(line) if line is not None else None


def _check(context: Context, items: list[Any]) -> Errors:
    """Every error of the call, items checked in order as if the earlier ones were written.

    ``holders`` maps each WBS code to the line that will hold it (a stored line's id, or the
    index of an earlier item that creates one), so two items of one call cannot give one WBS
    code two lines either.
    """
    holders: dict[int, object] = {
        line["wbs_code_id"]: line["id"] for line in context.store.scan(KIND, context.scope_id)
    }
    errors: Errors = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors = merge_errors(errors, {"base": ["each budget line item must be an object"]})
            continue
        if item.get("id") is not None:
            existing, problems = _line_by_id(context, item["id"])
            key: object = item["id"] if existing is None else existing["id"]
        else:
            key = holders.get(as_id(item.get("wbs_code_id")), f"item {index}")
            existing, problems = (
                context.store.record(KIND, context.scope_id, key) if isinstance(key, int) else None,
                {},
            )
        if not problems:
            merged, _, problems = merged_record(BUDGET_LINE_ITEMS, context, existing, item)
            if DOES_NOT_EXIST in problems.get("wbs_code_id", []):
                problems["wbs_code_id"] = [f"{DOES_NOT_EXIST} ({merged['wbs_code_id']})"]
            elif not problems and holders.get(merged["wbs_code_id"], key) != key:
                problems = {"wbs_code_id": [TAKEN]}
            elif not problems:
                holders = {wbs_code_id: holder for wbs_code_id, holder in holders.items() if holder != key}
                holders[merged["wbs_code_id"]] = key
        errors = merge_errors(errors, problems)
    return {name: list(dict.fromkeys(messages)) for name, messages in errors.items()}


def _write(context: Context, item: dict[str, Any]) -> Record:
    existing = (
        _line_by_id(context, item["id"])[0]
        if item.get("id") is not None
        else _line_of(context, item.get("wbs_code_id"))
    )
    merged, changes, _ = merged_record(BUDGET_LINE_ITEMS, context, existing, item)
    quantity, unit_cost = merged.get("quantity"), merged.get("unit_cost")
    if "original_budget_amount" not in changes and quantity and unit_cost:
        merged["original_budget_amount"] = money_text(Decimal(quantity) * Decimal(unit_cost))
    if merged.get("original_budget_amount") is None:
        merged["original_budget_amount"] = views.ZERO
    fields = {name: merged[name] for name in BUDGET_LINE_ITEMS.by_name}
    if existing is None:
        return context.store.insert(KIND, context.scope_id, fields)
    return context.store.update(KIND, context.scope_id, existing["id"], fields)


def sync(context: Context, items: list[Any]) -> tuple[list[dict[str, Any]] | None, Errors]:
    """``(lines as shown, {})`` after writing them all, or ``(None, errors)`` having written none."""
    errors = _check(context, items)
    if errors:
        return None, errors
    return [line_view(context, _write(context, item)) for item in items], {}


def line_view(context: Context, record: Record) -> dict[str, Any]:
    """A line as the sync answers it."""
    return {
        "id": record["id"],
        "original_budget_amount": views.number(record["original_budget_amount"]),
        "quantity": views.number(record.get("quantity")),
        "unit_cost": views.number(record.get("unit_cost")),
        "uom": record.get("uom"),
        "calculation_strategy": record.get("calculation_strategy"),
        "wbs_code": wbs.short_view(
            context.store, context.company_id, context.scope_id, record["wbs_code_id"]
        ),
        "currency_configuration": dict(views.CURRENCY),
    }


def budget_view(context: Context, record: Record) -> dict[str, Any]:
    base = f"/rest/v1.0/budget_views/{record['id']}"
    return {
        "id": record["id"],
        "name": record["name"],
        "description": record.get("description"),
        "role": None,
        "created_by": None,
        "links": {
            "detail_rows": f"{base}/detail_rows?project_id={context.scope_id}",
            "summary_rows": f"{base}/summary_rows?project_id={context.scope_id}",
        },
        **views.stamps(record),
    }


def detail_row(context: Context, record: Record) -> dict[str, Any]:
    store = context.store
    code = store.record("wbs_codes", context.scope_id, record["wbs_code_id"])
    items = wbs.segment_item_ids(code) if code else {}
    cost_code = store.record("cost_codes", context.scope_id, items.get(wbs.COST_CODE, 0))
    category = store.record("line_item_types", context.company_id, items.get(wbs.COST_TYPE, 0))
    sub_job = store.record("sub_jobs", context.scope_id, items.get(wbs.SUB_JOB, 0))
    project = store.record("projects", context.company_id, context.scope_id) or {}
    if sub_job is not None:
        biller_id, biller_type, biller = sub_job["id"], "SubJob", sub_job["name"]
    else:
        biller_id, biller_type, biller = context.scope_id, "Project", project.get("name")
    return {
        "id": record["id"],
        "deletable": True,
        "company_id": context.company_id,
        "project_id": context.scope_id,
        "project": project.get("name"),
        "wbs_code_id": record["wbs_code_id"],
        "biller_id": biller_id,
        "biller_type": biller_type,
        "biller": biller,
        "cost_code_id": cost_code["id"] if cost_code else None,
        "cost_code": f"{cost_code['code']} - {cost_code['name']}" if cost_code else None,
        "cost_code_origin_id": cost_code.get("origin_id") if cost_code else None,
        "root_cost_code_id": cost_code["id"] if cost_code else None,
        "root_cost_code": cost_code["code"] if cost_code else None,
        "category_id": category["id"] if category else None,
        "category": category["name"] if category else None,
        "original_budget_amount": record["original_budget_amount"],
        "budget_modifications": views.ZERO,
        "currency_configuration": dict(views.CURRENCY),
    }
