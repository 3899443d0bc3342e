"""Stored records as Procore shows them: one function per kind, shaped by the response schemas.

Every view takes the request's ``Context`` (for the store and the scope) and a stored record.
Attributes are all present, ``null`` when unset, as Procore's serializers show them. Money is a
string ("1200.5") where the response schema says string and a number where it says number, which
differs between endpoints of the same resource (a budget line's amount is a number in the sync
answer and a string in the budget view's rows); nested references (``vendor``, ``cost_code``,
``wbs_code``, ...) are small objects, as Procore nests them, not bare ids.

The sandbox has no attachments, payments or custom fields, and contracts do not add up their
change orders; those totals are "0.0" and those lists empty. REST v2 views (change order lines,
the adjustment line summary) show ids as strings, as v2 does.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sandbox import wbs
from sandbox.fields import JsonNumber, money_text
from sandbox.records import Context
from sandbox.resources import CONTRACT_DATE_NAMES
from sandbox.store import Record

View = Callable[[Context, Record], dict[str, Any]]
CURRENCY = {"currency_iso_code": "USD"}
ZERO = "0.0"


def number(amount: str | None) -> JsonNumber | None:
    """A stored amount shown as a JSON number, with all its digits (``sandbox.answers``)."""
    return JsonNumber(amount) if amount is not None else None


def total(amounts: list[str | None]) -> str:
    return money_text(sum((Decimal(amount) for amount in amounts if amount is not None), Decimal(0)))


def pick(record: Record, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: record.get(name) for name in names}


def stamps(record: Record) -> dict[str, Any]:
    return {"created_at": record["created_at"], "updated_at": record["updated_at"]}


def project_name(context: Context, project_id: int) -> str | None:
    project = context.store.record("projects", context.company_id, project_id)
    return project["name"] if project else None


def vendor_of(context: Context, vendor_id: int | None) -> Record | None:
    return context.store.vendor(context.company_id, vendor_id) if vendor_id is not None else None


# --- company level ---------------------------------------------------------------------------

PROJECT_FIELDS = (
    "name",
    "project_number",
    "address",
    "city",
    "state_code",
    "country_code",
    "zip",
    "phone",
    "time_zone",
    "description",
    "public_notes",
    "square_feet",
    "start_date",
    "completion_date",
    "warranty_start_date",
    "warranty_end_date",
    "estimated_start_date",
    "estimated_completion_date",
    "store_number",
    "accounting_project_number",
    "designated_market_area",
    "active",
    "flag",
    "code",
    "sector",
    "work_scope",
    "delivery_method",
    "priority",
    "office_id",
    "project_stage_id",
    "project_type_id",
    "project_owner_type_id",
    "project_region_id",
    "project_bid_type_id",
    "program_id",
    "parent_job_id",
    "project_sector_id",
    "origin_id",
    "origin_data",
    "origin_code",
)


def project(context: Context, record: Record) -> dict[str, Any]:
    lists = context.store.standard_cost_code_lists(context.company_id)
    number_ = record.get("project_number")
    return {
        "id": record["id"],
        **pick(record, PROJECT_FIELDS),
        "display_name": f"{number_} - {record['name']}" if number_ else record["name"],
        "total_value": record.get("total_value"),
        "estimated_value": record.get("estimated_value"),
        "estimated_budget": number(record.get("estimated_budget")),
        "is_demo": False,
        "template": False,
        "is_erp_integrated": bool(record.get("erp_integrated")),
        "standard_cost_code_list_id": lists[0]["id"] if lists else None,
        **stamps(record),
    }


def standard_cost_code_list(context: Context, record: Record) -> dict[str, Any]:
    return {"id": record["id"], **pick(record, ("name", "available_to_use_on_new_projects", "is_erp_list"))}


def standard_cost_code(context: Context, record: Record) -> dict[str, Any]:
    fields = ("standard_cost_code_list_id", "parent_id", "code", "name", "origin_data", "origin_id")
    return {"id": record["id"], **pick(record, fields), "full_code": record["code"]}


def line_item_type(context: Context, record: Record) -> dict[str, Any]:
    return {
        "id": record["id"],
        "name": record["name"],
        "code": record.get("csv_import_code"),
        "base_type": record["base_type"],
        **pick(record, ("origin_data", "origin_id")),
    }


USER_FIELDS = (
    "first_name",
    "last_name",
    "email_address",
    "job_title",
    "address",
    "city",
    "state_code",
    "country_code",
    "zip",
    "business_phone",
    "business_phone_extension",
    "mobile_phone",
    "fax_number",
    "email_signature",
    "notes",
    "initials",
    "is_active",
    "is_employee",
    "employee_id",
    "work_classification_id",
    "default_permission_template_id",
    "company_permission_template_id",
    "origin_id",
    "origin_data",
)


def user(context: Context, record: Record) -> dict[str, Any]:
    vendor = vendor_of(context, record.get("vendor_id"))
    name = " ".join(part for part in (record.get("first_name"), record.get("last_name")) if part)
    return {
        "id": record["id"],
        **pick(record, USER_FIELDS),
        "name": name,
        "vendor": {"id": vendor["id"], "name": vendor["name"]} if vendor else None,
        "avatar": None,
        "business_id": None,
        "is_insurance_manager": False,
        "last_login_at": None,
        "locale": None,
        **stamps(record),
    }


# --- project level ---------------------------------------------------------------------------


def cost_code(context: Context, record: Record) -> dict[str, Any]:
    sub_job_id = record.get("sub_job_id")
    if sub_job_id is not None:
        sub_job = context.store.record("sub_jobs", context.scope_id, sub_job_id)
        biller_id, biller_type, biller = sub_job_id, "SubJob", sub_job["name"] if sub_job else None
    else:
        biller_id, biller_type, biller = context.scope_id, "Project", project_name(context, context.scope_id)
    standard_id = record.get("standard_cost_code_id")
    standard = (
        context.store.record("standard_cost_codes", context.company_id, standard_id) if standard_id else None
    )
    return {
        "id": record["id"],
        **pick(record, ("code", "name", "position", "standard_cost_code_id", "origin_id", "origin_data")),
        "full_code": record["code"],
        "sortable_code": record["code"],
        "biller": biller,
        "biller_id": biller_id,
        "biller_type": biller_type,
        "budgeted": False,
        "parent": {"id": record["parent_id"]} if record.get("parent_id") else None,
        "standard_cost_code_list_id": standard["standard_cost_code_list_id"] if standard else None,
        "line_item_types": [],
        "deleted_at": None,
        **stamps(record),
    }


def sub_job(context: Context, record: Record) -> dict[str, Any]:
    return {
        "id": record["id"],
        **pick(record, ("name", "code", "origin_id", "origin_data")),
        **stamps(record),
    }


def wbs_code(context: Context, record: Record) -> dict[str, Any]:
    return wbs.view(context.store, context.company_id, context.scope_id, record)


CONTRACT_FIELDS = (
    "title",
    "number",
    "status",
    "executed",
    "retainage_percent",
    "accounting_method",
    "description",
    "inclusions",
    "exclusions",
    *CONTRACT_DATE_NAMES,
    "origin_id",
    "origin_data",
)
PURCHASE_ORDER_FIELDS = ("bill_to_address", "ship_to_address", "ship_via", "payment_terms", "delivery_date")


def _contract_total(context: Context, line_kind: str, holder_field: str, contract_id: int) -> str:
    lines = context.store.scan(line_kind, context.scope_id)
    return total([line["amount"] for line in lines if line[holder_field] == contract_id])


def _contract(context: Context, record: Record, line_kind: str, holder_field: str) -> dict[str, Any]:
    grand_total = _contract_total(context, line_kind, holder_field, record["id"])
    return {
        "id": record["id"],
        **pick(record, CONTRACT_FIELDS),
        "grand_total": grand_total,
        "approved_change_orders": ZERO,
        "pending_change_orders": ZERO,
        "draft_change_orders_amount": ZERO,
        "percentage_paid": ZERO,
        "deleted_at": None,
        "currency_configuration": dict(CURRENCY),
        **stamps(record),
    }


def prime_contract(context: Context, record: Record) -> dict[str, Any]:
    shown = _contract(context, record, "prime_contract_line_items", "prime_contract_id")
    vendor = vendor_of(context, record.get("vendor_id"))
    shown.update(
        vendor={"id": vendor["id"], "name": vendor["name"], "company": vendor["name"]} if vendor else None,
        contractor={"id": record["contractor_id"]} if record.get("contractor_id") else None,
        architect={"id": record["architect_id"]} if record.get("architect_id") else None,
        private=False,
        line_items_total=shown["grand_total"],
        revised_contract_amount=shown["grand_total"],
        owner_invoices_amount=ZERO,
        outstanding_balance=shown["grand_total"],
    )
    return shown


def _commitment(context: Context, record: Record, line_kind: str, holder_field: str) -> dict[str, Any]:
    shown = _contract(context, record, line_kind, holder_field)
    vendor = vendor_of(context, record.get("vendor_id"))
    shown_vendor = (
        {**pick(vendor, ("id", "origin_id", "origin_data")), "company": vendor["name"]} if vendor else None
    )
    shown.update(
        private=record.get("private"),
        origin_code=record.get("origin_code"),
        vendor=shown_vendor,
        project={"id": context.scope_id, "name": project_name(context, context.scope_id)},
        revised_contract=shown["grand_total"],
        remaining_balance_outstanding=shown["grand_total"],
        pending_revised_contract=shown["grand_total"],
        total_payments=ZERO,
    )
    return shown


def work_order_contract(context: Context, record: Record) -> dict[str, Any]:
    return _commitment(context, record, "work_order_contract_line_items", "work_order_contract_id")


def purchase_order_contract(context: Context, record: Record) -> dict[str, Any]:
    shown = _commitment(context, record, "purchase_order_contract_line_items", "purchase_order_contract_id")
    shown.update(pick(record, PURCHASE_ORDER_FIELDS))
    shown["assignee"] = {"id": record["assignee_id"]} if record.get("assignee_id") else None
    return shown


def _line_item(context: Context, record: Record, holder_type: str, holder_id: int) -> dict[str, Any]:
    store = context.store
    code = (
        store.record("cost_codes", context.scope_id, record["cost_code_id"])
        if record.get("cost_code_id")
        else None
    )
    kind = (
        store.record("line_item_types", context.company_id, record["line_item_type_id"])
        if record.get("line_item_type_id")
        else None
    )
    return {
        "id": record["id"],
        **pick(
            record, ("amount", "quantity", "unit_cost", "uom", "description", "extended_type", "tax_code_id")
        ),
        **pick(record, ("origin_id", "origin_data")),
        "total_amount": record["amount"],
        "extended_amount": record["amount"],
        "position": None,
        "holder": {"id": holder_id, "holder_type": holder_type},
        "project": {"id": context.scope_id, "name": project_name(context, context.scope_id)},
        "cost_code": cost_code(context, code) if code else None,
        "line_item_type": line_item_type(context, kind) if kind else None,
        "wbs_code": wbs.short_view(store, context.company_id, context.scope_id, record.get("wbs_code_id")),
        "currency_configuration": dict(CURRENCY),
        **stamps(record),
    }


def prime_contract_line_item(context: Context, record: Record) -> dict[str, Any]:
    return _line_item(context, record, "PrimeContract", record["prime_contract_id"])


def work_order_contract_line_item(context: Context, record: Record) -> dict[str, Any]:
    return _line_item(context, record, "WorkOrderContract", record["work_order_contract_id"])


def purchase_order_contract_line_item(context: Context, record: Record) -> dict[str, Any]:
    return _line_item(context, record, "PurchaseOrderContract", record["purchase_order_contract_id"])


def direct_cost_line_item(context: Context, record: Record) -> dict[str, Any]:
    return _line_item(context, record, "DirectCost", record["direct_cost_id"])


DIRECT_COST_FIELDS = (
    "direct_cost_type",
    "status",
    "vendor_id",
    "invoice_number",
    "direct_cost_date",
    "received_date",
    "payment_date",
    "terms",
    "description",
    "origin_id",
    "origin_data",
)


def direct_cost(context: Context, record: Record) -> dict[str, Any]:
    """The sync answer's form: ``vendor`` is ``{id, name}``."""
    lines = [
        line
        for line in context.store.scan("direct_cost_line_items", context.scope_id)
        if line["direct_cost_id"] == record["id"]
    ]
    vendor = vendor_of(context, record.get("vendor_id"))
    employee_id = record.get("employee_id")
    return {
        "id": record["id"],
        **pick(record, DIRECT_COST_FIELDS),
        "vendor": {"id": vendor["id"], "name": vendor["name"]} if vendor else None,
        "vendor_name": vendor["name"] if vendor else None,
        "employee": {"id": employee_id, "name": None} if employee_id else None,
        "grand_total": total([line["amount"] for line in lines]),
        "line_items_count": len(lines),
        "attachments": [],
        "attachments_count": 0,
        "deleted_at": None,
        "currency_configuration": dict(CURRENCY),
        **stamps(record),
    }


def direct_cost_listed(context: Context, record: Record) -> dict[str, Any]:
    """The v1.1 list's form: ``vendor`` is the vendor's name and ``amount`` the total."""
    shown = direct_cost(context, record)
    shown["vendor"] = shown["vendor_name"]
    shown["amount"] = shown["grand_total"]
    return shown
