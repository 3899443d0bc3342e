"""Every resource an ERP → Procore sync writes, declared as data for ``sandbox.records``.

Fields, vocabularies and unique groups follow Procore's published request schemas
(``sandbox/openapi/``) and the reference (``procore-api.md`` §4). Length limits are the
sandbox's own (Procore publishes none): 255 for names and codes, 10,000 for free text. A few
rules cannot be said by one field and are small functions here:

- projects and users: state and country codes are ISO 3166, checked like a vendor's;
- users: a well-formed email address, unique in the company whatever its case;
- direct costs: ``invoice_number`` is required for an invoice; a direct cost or a line holding
  an ``origin_id`` (or whose direct cost holds one) is locked: any change is refused, but a
  resend equal to what is stored passes as a no-op, so a retry after a lost answer is safe;
- subcontracts and purchase orders: once Approved or Complete, the vendor cannot change and the
  schedule of values (line sync) is refused, again except for no-op resends;
- lines: a line is costed either by ``wbs_code_id`` or by ``cost_code_id`` + ``line_item_type_id``
  (``wbs_code_id`` wins when both come); the other form is derived, creating the WBS code for
  the combination if it is new. ``amount`` defaults to quantity × unit cost, else 0.

Change orders (commitment and prime) and budget changes are what the field writes and the ERP
reads back: a change order's ``contract_id`` must name a contract of the right kinds in the
project, its ``number`` is the next one on the contract when not given, and each one comes with
the change order package Procore keeps behind it (``legacy_package_id``), which repeats its
number, title and status and outlives it as a soft-deleted record. Change order lines name a WBS
code and may link a line of the change order's contract; none change once it is approved.

Creating a project seeds what a Procore project template gives it: the "Procore Standard
Budget" view and one cost code, "01-001 General Requirements", with no ``origin_id``, so an ERP
that also has 01-001 must link to it by id instead of creating it again.
"""

from __future__ import annotations

from decimal import Decimal

from sandbox import wbs
from sandbox.fields import (
    BLANK,
    Field,
    boolean,
    day,
    enum,
    integer,
    money,
    money_text,
    origin_fields,
    reference,
    string,
    text,
)
from sandbox.records import Context, Resource, Rule, Unique, changed
from sandbox.store import Record
from sandbox.validation import EMAIL_PATTERN, Errors, check_address

BASE_TYPES = ("equipment", "materials", "commitment", "owner_cost", "professional_services", "other")
PRIME_CONTRACT_STATUSES = ("Draft", "Out For Bid", "Out For Signature", "Approved", "Complete", "Terminated")
WORK_ORDER_STATUSES = (*PRIME_CONTRACT_STATUSES, "Void")
PURCHASE_ORDER_STATUSES = (
    "Draft",
    "Processing",
    "Submitted",
    "Partially Received",
    "Received",
    "Approved",
    "Closed",
)
DIRECT_COST_TYPES = ("invoice", "expense", "payroll")
DIRECT_COST_STATUSES = ("draft", "pending", "revise_and_resubmit", "approved")
LOCKED_STATUSES = frozenset({"Approved", "Complete"})  # commitments: vendor and SOV frozen

ORIGIN_LOCKED = "is locked because it was created by an integration (origin_id set)"
VENDOR_LOCKED = "cannot be changed once approved"
SOV_LOCKED = "cannot be changed once the contract is approved or complete"
SEEDED_COST_CODE = {"code": "01-001", "name": "General Requirements"}
STANDARD_BUDGET_VIEW = {
    "name": "Procore Standard Budget",
    "description": "The budget view every project starts with",
}


# --- rules -----------------------------------------------------------------------------------


def address_rule(merged: Record, existing: Record | None, context: Context) -> Errors:
    errors: Errors = {}
    check_address(merged, errors)
    return errors


def email_rule(merged: Record, existing: Record | None, context: Context) -> Errors:
    email = merged.get("email_address")
    return {"email_address": ["is invalid"]} if email and not EMAIL_PATTERN.match(email) else {}


def invoice_number_rule(merged: Record, existing: Record | None, context: Context) -> Errors:
    if merged.get("direct_cost_type") == "invoice" and not (merged.get("invoice_number") or "").strip():
        return {"invoice_number": [BLANK]}
    return {}


def direct_cost_lock(merged: Record, existing: Record | None, context: Context) -> Errors:
    if existing is not None and existing.get("origin_id") is not None and changed(merged, existing):
        return {"base": [ORIGIN_LOCKED]}
    return {}


def direct_cost_line_lock(merged: Record, existing: Record | None, context: Context) -> Errors:
    if existing is None or not changed(merged, existing):
        return {}
    direct_cost = context.store.record("direct_costs", context.scope_id, existing["direct_cost_id"])
    if existing.get("origin_id") is not None or (direct_cost or {}).get("origin_id") is not None:
        return {"base": [ORIGIN_LOCKED]}
    return {}


def vendor_lock(merged: Record, existing: Record | None, context: Context) -> Errors:
    if (
        existing is not None
        and existing.get("status") in LOCKED_STATUSES
        and "vendor_id" in changed(merged, existing)
    ):
        return {"vendor_id": [VENDOR_LOCKED]}
    return {}


def sov_lock(holder_kind: str, holder_field: str) -> Rule:
    """Refuse any change to the lines of an Approved or Complete contract."""

    def rule(merged: Record, existing: Record | None, context: Context) -> Errors:
        holder = context.store.record(holder_kind, context.scope_id, context.fixed[holder_field])
        if holder is not None and holder.get("status") in LOCKED_STATUSES and changed(merged, existing):
            return {"base": [SOV_LOCKED]}
        return {}

    return rule


def costed_rule(merged: Record, existing: Record | None, context: Context) -> Errors:
    if merged.get("wbs_code_id") is not None:
        return {}
    if merged.get("cost_code_id") is None:
        return {"wbs_code_id": [BLANK]}
    return {"line_item_type_id": [BLANK]} if merged.get("line_item_type_id") is None else {}


# --- derivations -----------------------------------------------------------------------------


def wbs_wins(changes: Record) -> Record:
    if changes.get("wbs_code_id") is not None:
        return {
            name: value
            for name, value in changes.items()
            if name not in ("cost_code_id", "line_item_type_id")
        }
    return changes


def prepare_line(merged: Record, existing: Record | None, changes: Record, context: Context) -> None:
    """Fill the costing form that was not given, and the amount when it was not given."""
    if "wbs_code_id" in changes or (existing is None and merged.get("wbs_code_id") is not None):
        code = context.store.record("wbs_codes", context.scope_id, merged["wbs_code_id"])
        assert code is not None  # checked as a reference
        items = wbs.segment_item_ids(code)
        merged["cost_code_id"] = items.get(wbs.COST_CODE)
        merged["line_item_type_id"] = items.get(wbs.COST_TYPE)
    elif "cost_code_id" in changes or "line_item_type_id" in changes:
        merged["wbs_code_id"] = wbs.for_cost_code(
            context, merged["cost_code_id"], merged["line_item_type_id"]
        )["id"]
    quantity, unit_cost = merged.get("quantity"), merged.get("unit_cost")
    if "amount" not in changes and ({"quantity", "unit_cost"} & changes.keys()) and quantity and unit_cost:
        merged["amount"] = money_text(Decimal(quantity) * Decimal(unit_cost))
    if merged.get("amount") is None:
        merged["amount"] = "0.0"


def seed_project(project: Record, context: Context) -> None:
    """What a Procore project template gives a new project (see the module docstring)."""
    project_id = project["id"]
    store = context.store
    cost_code = {declared.name: declared.default for declared in COST_CODES.fields}
    store.insert("cost_codes", project_id, {**cost_code, **SEEDED_COST_CODE, "sub_job_id": None})
    store.insert("budget_views", project_id, dict(STANDARD_BUDGET_VIEW))


# --- declarations ----------------------------------------------------------------------------

ADDRESS = (string("address"), string("city"), string("state_code"), string("country_code"), string("zip", 20))

PROJECTS = Resource(
    kind="projects",
    label="Project",
    fields=(
        string("name", required=True),
        string("project_number"),
        boolean("active", default=True),
        *ADDRESS,
        string("phone", 40),
        text("description"),
        text("public_notes"),
        day("start_date"),
        day("completion_date"),
        day("warranty_start_date"),
        day("warranty_end_date"),
        day("estimated_start_date"),
        day("estimated_completion_date"),
        money("total_value"),
        money("estimated_value"),
        money("estimated_budget"),
        integer("square_feet"),
        enum("flag", ("Red", "Yellow", "Green")),
        string("time_zone"),
        string("code"),
        string("store_number"),
        string("accounting_project_number"),
        string("designated_market_area"),
        string("sector"),
        enum("work_scope", ("new_construction", "renovation_alteration", "maintenance_service")),
        enum(
            "delivery_method",
            (
                "construction_management_at_risk_cmar",
                "construction_manager_as_agent_owners_rep",
                "design_bid_build_dbb",
                "design_build_db",
                "indefinite_delivery_indefinite_quantity_idiq",
                "integrated_project_delivery",
                "multi_prime",
                "public_private_partnership_p3",
                "other",
            ),
        ),
        enum("priority", ("low", "medium", "high")),
        *(
            integer(name)
            for name in (
                "office_id",
                "project_stage_id",
                "project_type_id",
                "project_owner_type_id",
                "project_region_id",
                "project_bid_type_id",
                "project_template_id",
                "program_id",
                "parent_job_id",
                "project_sector_id",
            )
        ),
        Field("erp_integrated", "boolean", create_only=True, default=False),
        *origin_fields(),
        string("origin_code"),
    ),
    unique=(Unique(("project_number",)),),
    rules=(address_rule,),
    after_create=seed_project,
)

STANDARD_COST_CODES = Resource(
    kind="standard_cost_codes",
    label="StandardCostCode",
    fields=(
        string("code", required=True),
        string("name"),
        reference("parent_id", "standard_cost_codes"),
        *origin_fields(),
    ),
    unique=(Unique(("code", "standard_cost_code_list_id")),),
)

LINE_ITEM_TYPES = Resource(
    kind="line_item_types",
    label="LineItemType",
    fields=(
        string("name", required=True),
        string("csv_import_code"),
        enum("base_type", BASE_TYPES, default="other"),
        *origin_fields(),
    ),
)

COST_CODES = Resource(
    kind="cost_codes",
    label="CostCode",
    fields=(
        string("code", required=True),
        string("name", required=True),
        reference("standard_cost_code_id", "standard_cost_codes"),
        reference("parent_id", "cost_codes"),
        integer("position"),
        *origin_fields(),
    ),
    unique=(Unique(("code", "sub_job_id")),),
)

SUB_JOBS = Resource(
    kind="sub_jobs",
    label="SubJob",
    fields=(string("name", required=True), string("code", required=True), *origin_fields()),
    unique=(Unique(("code",)),),
)

USERS = Resource(
    kind="users",
    label="User",
    fields=(
        string("first_name"),
        string("last_name", required=True),
        string("email_address", required=True),
        string("job_title"),
        *ADDRESS,
        string("business_phone", 40),
        integer("business_phone_extension"),
        string("mobile_phone", 40),
        string("fax_number", 40),
        text("email_signature"),
        text("notes"),
        string("initials", 10),
        boolean("is_active", default=True),
        boolean("is_employee", default=False),
        string("employee_id"),
        reference("vendor_id", "vendors"),
        integer("default_permission_template_id"),
        integer("company_permission_template_id"),
        integer("work_classification_id"),
        *origin_fields(),
    ),
    unique=(Unique(("email_address",), casefold=True), Unique(("employee_id",))),
    rules=(address_rule, email_rule),
)

CONTRACT_DATE_NAMES = (
    "contract_date",
    "contract_start_date",
    "contract_estimated_completion_date",
    "actual_completion_date",
    "execution_date",
    "issued_on_date",
    "letter_of_intent_date",
    "approval_letter_date",
    "returned_date",
    "signed_contract_received_date",
)
CONTRACT_DATES = tuple(day(name) for name in CONTRACT_DATE_NAMES)
CONTRACT_HEADER = (
    string("title"),
    string("number"),
    reference("vendor_id", "vendors"),
    boolean("executed", default=False),
    money("retainage_percent"),
    enum("accounting_method", ("amount", "unit"), default="amount"),
    text("description"),
    text("inclusions"),
    text("exclusions"),
    *CONTRACT_DATES,
    *origin_fields(),
)

PRIME_CONTRACTS = Resource(
    kind="prime_contracts",
    label="PrimeContract",
    fields=(
        *CONTRACT_HEADER,
        enum("status", PRIME_CONTRACT_STATUSES, default="Draft"),
        integer("contractor_id"),
        integer("architect_id"),
    ),
    unique=(Unique(("number",)),),
)

WORK_ORDER_CONTRACTS = Resource(
    kind="work_order_contracts",
    label="WorkOrderContract",
    fields=(
        *CONTRACT_HEADER,
        enum("status", WORK_ORDER_STATUSES, default="Draft"),
        boolean("private", default=False),
        string("origin_code"),
    ),
    unique=(Unique(("number",)),),
    rules=(vendor_lock,),
)

PURCHASE_ORDER_CONTRACTS = Resource(
    kind="purchase_order_contracts",
    label="PurchaseOrderContract",
    fields=(
        *CONTRACT_HEADER,
        enum("status", PURCHASE_ORDER_STATUSES, default="Draft"),
        boolean("private", default=False),
        string("origin_code"),
        integer("assignee_id"),
        text("bill_to_address"),
        text("ship_to_address"),
        string("ship_via"),
        text("payment_terms"),
        day("delivery_date"),
    ),
    unique=(Unique(("number",)),),
    rules=(vendor_lock,),
)

LINE_FIELDS = (
    money("amount"),
    money("quantity"),
    money("unit_cost"),
    string("uom"),
    text("description"),
    enum("extended_type", ("manual", "calculated"), default="manual"),
    reference("wbs_code_id", "wbs_codes"),
    reference("cost_code_id", "cost_codes"),
    reference("line_item_type_id", "line_item_types"),
    integer("tax_code_id"),
    *origin_fields(),
)


def line_resource(
    kind: str, label: str, rules: tuple[Rule, ...] = (), extra: tuple[Field, ...] = ()
) -> Resource:
    return Resource(
        kind=kind,
        label=label,
        fields=(*extra, *LINE_FIELDS),
        rules=(costed_rule, *rules),
        normalize=wbs_wins,
        prepare=prepare_line,
    )


PRIME_CONTRACT_LINE_ITEMS = line_resource("prime_contract_line_items", "PrimeContractLineItem")
WORK_ORDER_CONTRACT_LINE_ITEMS = line_resource(
    "work_order_contract_line_items",
    "WorkOrderContractLineItem",
    rules=(sov_lock("work_order_contracts", "work_order_contract_id"),),
)
PURCHASE_ORDER_CONTRACT_LINE_ITEMS = line_resource(
    "purchase_order_contract_line_items",
    "PurchaseOrderContractLineItem",
    rules=(sov_lock("purchase_order_contracts", "purchase_order_contract_id"),),
)

DIRECT_COSTS = Resource(
    kind="direct_costs",
    label="DirectCost",
    fields=(
        Field("direct_cost_type", "enum", choices=DIRECT_COST_TYPES, required=True, create_only=True),
        enum("status", DIRECT_COST_STATUSES, default="draft"),
        reference("vendor_id", "vendors", required=True),
        integer("employee_id"),
        string("invoice_number"),
        day("direct_cost_date"),
        day("received_date"),
        day("payment_date"),
        string("terms"),
        text("description"),
        *origin_fields(),
    ),
    rules=(invoice_number_rule, direct_cost_lock),
)

DIRECT_COST_LINE_ITEMS = line_resource(
    "direct_cost_line_items",
    "DirectCostLineItem",
    rules=(direct_cost_line_lock,),
    extra=(reference("direct_cost_id", "direct_costs", required=True, create_only=True),),
)

BUDGET_LINE_ITEMS = Resource(
    kind="budget_line_items",
    label="BudgetLineItem",
    fields=(
        reference("wbs_code_id", "wbs_codes", required=True),
        money("original_budget_amount"),
        money("quantity"),
        money("unit_cost"),
        string("uom"),
        string("calculation_strategy"),
    ),
    # One line per WBS code: sandbox.budget checks it across the whole call, not item by item.
)
