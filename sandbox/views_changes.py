"""How Procore shows change orders, their packages, budget changes and budget modifications.

The views of ``sandbox.resources_changes``, in the style of ``sandbox.views``.
"""

from __future__ import annotations

from typing import Any

from sandbox.records import Context
from sandbox.resources_changes import CHANGE_ORDER_LINES, PACKAGE_MIRRORED, contract_of
from sandbox.store import Record
from sandbox import wbs
from sandbox.views import CURRENCY, number, pick, project_name, stamps, total, vendor_of

# --- change orders, budget changes and budget modifications ----------------------------------

CHANGE_ORDER_FIELDS = (
    "number",
    "title",
    "description",
    "status",
    "reason",
    "reference",
    "revision",
    "executed",
    "private",
    "paid",
    "field_change",
    "signature_required",
    "due_date",
    "paid_date",
    "invoiced_date",
    "signed_change_order_received_date",
    "schedule_impact_amount",
    "batch_id",
    "change_order_change_reason_id",
    "location_id",
    "designated_reviewer_id",
    "received_from_id",
    "contract_id",
    "legacy_package_id",
)


def _change_order_total(context: Context, kind: str, change_order_id: int) -> str:
    line_kind, holder_field, _ = CHANGE_ORDER_LINES[kind]
    lines = context.store.scan(line_kind, context.scope_id)
    return total([line["amount"] for line in lines if line[holder_field] == change_order_id])


def _change_order(context: Context, record: Record, kind: str) -> dict[str, Any]:
    found = contract_of(context, record)
    contract = found[1] if found else {}
    vendor = vendor_of(context, contract.get("vendor_id"))
    return {
        "id": record["id"],
        **pick(record, CHANGE_ORDER_FIELDS),
        "contract": {
            "id": record["contract_id"],
            "type": record.get("contract_type"),
            "number": contract.get("number"),
            "title": contract.get("title"),
        },
        "vendor": {"id": vendor["id"], "name": vendor["name"]} if vendor else None,
        "project": {"id": context.scope_id, "name": project_name(context, context.scope_id)},
        "grand_total": _change_order_total(context, kind, record["id"]),
        "currency_configuration": dict(CURRENCY),
        **stamps(record),
    }


def commitment_change_order(context: Context, record: Record) -> dict[str, Any]:
    return _change_order(context, record, "commitment_change_orders")


def prime_change_order(context: Context, record: Record) -> dict[str, Any]:
    return _change_order(context, record, "prime_change_orders")


def _text_id(value: int | None) -> str | None:
    """REST v2 shows ids as strings."""
    return str(value) if value is not None else None


def change_order_line_item(context: Context, record: Record) -> dict[str, Any]:
    """The REST v2 form: ids are strings, money is a decimal string, quantity a number."""
    code = _wbs(context, record)
    shown = {
        "id": _text_id(record["id"]),
        **pick(record, ("description", "uom", "unit_cost", "amount", "extended_type", "position")),
        "quantity": number(record.get("quantity")),
        "wbs_code_id": _text_id(record.get("wbs_code_id")),
        "tax_code_id": _text_id(record.get("tax_code_id")),
        "prime_line_item_id": _text_id(record.get("prime_line_item_id")),
        "wbs_code": {**code, "id": _text_id(code["id"])} if code else None,
        **stamps(record),
    }
    if "commitment_change_order_id" in record:
        shown["commitment_line_item_id"] = _text_id(record.get("commitment_line_item_id"))
    return shown


def change_order_package(context: Context, record: Record) -> dict[str, Any]:
    """The legacy package of a change order; after a delete it keeps the total it had."""
    grand_total = record.get("grand_total")
    if grand_total is None:
        commitment = record["type"] == "CommitmentContractChangeOrder"
        kind = "commitment_change_orders" if commitment else "prime_change_orders"
        grand_total = _change_order_total(context, kind, record["change_order_id"])
    return {
        "id": record["id"],
        **pick(record, (*PACKAGE_MIRRORED, "type", "deleted_at")),
        "grand_total": grand_total,
        "origin_id": None,
        "origin_data": None,
        "origin_code": None,
        "reviewed_at": None,
        "currency_configuration": dict(CURRENCY),
        **stamps(record),
    }


def _amounts(record: Record) -> dict[str, Any]:
    """Budget change amounts as the request sends them: JSON numbers."""
    return {name: number(record.get(name)) for name in ("amount", "quantity", "unit_cost")}


def _wbs(context: Context, record: Record) -> dict[str, Any] | None:
    return wbs.short_view(context.store, context.company_id, context.scope_id, record.get("wbs_code_id"))


def adjustment_line_item(context: Context, record: Record) -> dict[str, Any]:
    fields = ("adjustment_number", "type", "uom", "description", "comment", "calculation_strategy", "ref")
    return {
        "id": record["id"],
        **pick(record, (*fields, "wbs_code_id", "change_event_line_item_id")),
        **_amounts(record),
        "wbs_code": _wbs(context, record),
        **stamps(record),
    }


def _adjustment_lines(context: Context, budget_change_id: int) -> list[Record]:
    lines = context.store.records("budget_change_adjustment_line_items", context.scope_id)
    return [line for line in lines if line["budget_change_id"] == budget_change_id]


def budget_change_summary(context: Context, record: Record) -> dict[str, Any]:
    lines = _adjustment_lines(context, record["id"])
    return {
        "id": record["id"],
        **pick(record, ("number", "title", "description", "status")),
        "amount": number(total([line["amount"] for line in lines])),
        "custom_fields": {},
        **stamps(record),
    }


def budget_change(context: Context, record: Record) -> dict[str, Any]:
    shown = budget_change_summary(context, record)
    del shown["custom_fields"]
    lines = _adjustment_lines(context, record["id"])
    shown["adjustment_line_items"] = [adjustment_line_item(context, line) for line in lines]
    shown["production_quantities"] = []
    return shown


def adjustment_line_item_summary(context: Context, record: Record) -> dict[str, Any]:
    """The REST v2 company-wide row: the line with its budget change's number, status and title."""
    holder = context.store.record("budget_changes", context.scope_id, record["budget_change_id"]) or {}
    return {
        "id": _text_id(record["id"]),
        **pick(record, ("adjustment_number", "uom", "description", "type")),
        "wbs_code_id": _text_id(record["wbs_code_id"]),
        "amount": number(record.get("amount")),
        "quantity": number(record.get("quantity")),
        "budget_change_id": _text_id(record["budget_change_id"]),
        "budget_change_number": holder.get("number"),
        "budget_change_status": holder.get("status"),
        "budget_change_name": holder.get("title"),
    }


def budget_modification(context: Context, record: Record) -> dict[str, Any]:
    fields = ("from_budget_line_item_id", "to_budget_line_item_id", "transfer_amount", "notes")
    return {"id": record["id"], **pick(record, (*fields, "origin_id", "origin_data")), **stamps(record)}
