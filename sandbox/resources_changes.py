"""Change orders and budget changes: records the field writes in Procore and the ERP reads back.

Declared as data for ``sandbox.records``, like ``sandbox.resources``: commitment and prime
change orders (each with a package that mirrors it and survives its deletion, soft-deleted),
their v2 line items, budget changes with their adjustment lines, and the legacy budget
modifications.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.fields import (
    DOES_NOT_EXIST,
    Field,
    boolean,
    day,
    enum,
    integer,
    is_blank,
    money,
    money_text,
    origin_fields,
    reference,
    string,
    text,
)
from sandbox.records import Context, Prepare, Resource, Rule, Unique, changed
from sandbox.store import Record
from sandbox.validation import Errors

# --- change orders and budget changes: written in the field, read back by the ERP ------------

CHANGE_ORDER_STATUSES = (
    "draft",
    "pricing",
    "not_pricing",
    "pending",
    "revised",
    "proceeding",
    "not_proceeding",
    "pending_billable",
    "no_charge",
    "approved",
    "rejected",
    "void",
)
BUDGET_CHANGE_STATUSES = ("draft", "approved", "under_review", "void")
# contract kind -> (Procore's contract type, its line kind, the line's contract field)
CONTRACT_TYPES: dict[str, tuple[str, str, str]] = {
    "work_order_contracts": ("WorkOrderContract", "work_order_contract_line_items", "work_order_contract_id"),
    "purchase_order_contracts": (
        "PurchaseOrderContract",
        "purchase_order_contract_line_items",
        "purchase_order_contract_id",
    ),
    "prime_contracts": ("PrimeContract", "prime_contract_line_items", "prime_contract_id"),
}
# change order kind -> (its line kind, the line's change order field, its package type)
CHANGE_ORDER_LINES: dict[str, tuple[str, str, str]] = {
    "commitment_change_orders": (
        "commitment_change_order_line_items",
        "commitment_change_order_id",
        "CommitmentContractChangeOrder",
    ),
    "prime_change_orders": (
        "prime_change_order_line_items",
        "prime_change_order_id",
        "PrimeContractChangeOrder",
    ),
}
PACKAGE_KIND = "change_order_packages"
# What a change order's package repeats of it (its number, title, status, ...).
PACKAGE_MIRRORED = (
    "contract_id",
    "number",
    "title",
    "description",
    "status",
    "executed",
    "due_date",
    "paid_date",
    "invoiced_date",
    "signed_change_order_received_date",
    "revision",
    "schedule_impact_amount",
    "private",
)
APPROVED_LOCKED = "cannot be changed once the change order is approved"
NOT_A_CONTRACT_LINE = "is not a line of the change order's contract"
NOT_A_PRIME_LINE = "is not a line of a prime contract of the project"


def contract_of(context: Context, record: Record) -> tuple[str, Record] | None:
    """``(contract kind, contract)`` of a change order, looked up in the kinds it may be."""
    for kind in CONTRACT_TYPES:
        contract = context.store.record(kind, context.scope_id, record.get("contract_id") or 0)
        if contract is not None:
            return kind, contract
    return None


def contract_rule(kinds: tuple[str, ...]) -> Rule:
    """``contract_id`` must name a contract of one of ``kinds`` in the project."""

    def rule(merged: Record, existing: Record | None, context: Context) -> Errors:
        if merged.get("contract_id") is None or "contract_id" not in changed(merged, existing):
            return {}
        found = contract_of(context, merged)
        return {} if found is not None and found[0] in kinds else {"contract_id": [DOES_NOT_EXIST]}

    return rule


def next_number(taken: list[Any]) -> str:
    """The next free whole number after the largest numeric one, as Procore numbers records."""
    numbers = [int(str(value)) for value in taken if value is not None and str(value).isdigit()]
    return str(max(numbers, default=0) + 1)


def prepare_change_order(merged: Record, existing: Record | None, changes: Record, context: Context) -> None:
    kind, _ = contract_of(context, merged) or ("", {})
    merged["contract_type"] = CONTRACT_TYPES[kind][0] if kind else None
    if existing is None and is_blank(merged.get("number")):
        siblings = [
            record["number"]
            for change_order_kind in CHANGE_ORDER_LINES
            for record in context.store.scan(change_order_kind, context.scope_id)
            if record["contract_id"] == merged["contract_id"]
        ]
        merged["number"] = next_number(siblings)


def package_fields(change_order: Record) -> Record:
    fields = {name: change_order.get(name) for name in PACKAGE_MIRRORED}
    if fields["status"] == "pending_billable":
        fields["status"] = "pending"  # the package vocabulary has no pending_billable
    return fields


def create_package(change_order: Record, context: Context, kind: str) -> None:
    """Every change order comes with its (legacy) change order package; the answer shows its id."""
    fields = {
        **package_fields(change_order),
        "change_order_id": change_order["id"],
        "type": CHANGE_ORDER_LINES[kind][2],
        "deleted_at": None,
        "grand_total": None,
    }
    package = context.store.insert(PACKAGE_KIND, context.scope_id, fields)
    context.store.update(kind, context.scope_id, change_order["id"], {"legacy_package_id": package["id"]})
    change_order["legacy_package_id"] = package["id"]  # the record save() answers with


def follow_package(context: Context, change_order: Record) -> None:
    """Repeat a change order's new values on its package (whose updated_at moves if any did)."""
    package_id = change_order.get("legacy_package_id")
    if package_id is not None:
        context.store.update(PACKAGE_KIND, context.scope_id, package_id, package_fields(change_order))


def touch_change_order(context: Context, kind: str, change_order: Record) -> None:
    """A line changed: the change order (and its package) changed, as Procore stamps them."""
    context.store.touch(kind, context.scope_id, change_order["id"])
    if change_order.get("legacy_package_id") is not None:
        context.store.touch(PACKAGE_KIND, context.scope_id, change_order["legacy_package_id"])


def change_order_resource(kind: str, label: str, contract_kinds: tuple[str, ...]) -> Resource:
    return Resource(
        kind=kind,
        label=label,
        fields=(
            Field("contract_id", "reference", required=True, create_only=True),
            string("number"),
            string("title"),
            text("description"),
            enum("status", CHANGE_ORDER_STATUSES, default="draft"),
            string("reason"),
            string("reference"),
            Field("revision", "integer", default=0),
            boolean("executed", default=False),
            boolean("private", default=False),
            boolean("paid", default=False),
            boolean("field_change", default=False),
            boolean("signature_required", default=False),
            boolean("enable_ssov", default=False),
            day("due_date"),
            day("paid_date"),
            day("invoiced_date"),
            day("signed_change_order_received_date"),
            integer("schedule_impact_amount"),
            *(
                integer(name)
                for name in (
                    "batch_id",
                    "change_order_change_reason_id",
                    "location_id",
                    "designated_reviewer_id",
                    "received_from_id",
                )
            ),
        ),
        unique=(Unique(("number", "contract_id")),),
        rules=(contract_rule(contract_kinds),),
        prepare=prepare_change_order,
        after_create=lambda record, context: create_package(record, context, kind),
    )


COMMITMENT_CHANGE_ORDERS = change_order_resource(
    "commitment_change_orders",
    "CommitmentChangeOrder",
    ("work_order_contracts", "purchase_order_contracts"),
)
PRIME_CHANGE_ORDERS = change_order_resource("prime_change_orders", "PrimeChangeOrder", ("prime_contracts",))


def _holder(context: Context, holder_kind: str) -> Record | None:
    holder_field = CHANGE_ORDER_LINES[holder_kind][1]
    return context.store.record(holder_kind, context.scope_id, context.fixed[holder_field])


def approved_lock(holder_kind: str) -> Rule:
    def rule(merged: Record, existing: Record | None, context: Context) -> Errors:
        holder = _holder(context, holder_kind)
        if holder is not None and holder["status"] == "approved" and changed(merged, existing):
            return {"base": [APPROVED_LOCKED]}
        return {}

    return rule


def _line_of(context: Context, line_id: int, contract_kind: str, contract_id: int | None) -> bool:
    _, line_kind, contract_field = CONTRACT_TYPES[contract_kind]
    line = context.store.record(line_kind, context.scope_id, line_id)
    return line is not None and (contract_id is None or line[contract_field] == contract_id)


def contract_line_rule(holder_kind: str) -> Rule:
    """``commitment_line_item_id`` / ``prime_line_item_id`` name a line of the right contract."""

    def rule(merged: Record, existing: Record | None, context: Context) -> Errors:
        moved = changed(merged, existing)
        holder = _holder(context, holder_kind)
        found = contract_of(context, holder) if holder is not None else None
        errors: Errors = {}
        commitment_line = merged.get("commitment_line_item_id")
        if commitment_line is not None and "commitment_line_item_id" in moved:
            if found is None or not _line_of(context, commitment_line, found[0], found[1]["id"]):
                errors["commitment_line_item_id"] = [NOT_A_CONTRACT_LINE]
        prime_line = merged.get("prime_line_item_id")
        if prime_line is not None and "prime_line_item_id" in moved:
            own_prime = found is not None and found[0] == "prime_contracts"
            if own_prime and found is not None:
                if not _line_of(context, prime_line, "prime_contracts", found[1]["id"]):
                    errors["prime_line_item_id"] = [NOT_A_CONTRACT_LINE]
            elif not _line_of(context, prime_line, "prime_contracts", None):
                errors["prime_line_item_id"] = [NOT_A_PRIME_LINE]
        return errors

    return rule


def default_amount(merged: Record, changes: Record) -> None:
    """``amount`` is quantity × unit cost unless given, and 0 when nothing says otherwise."""
    quantity, unit_cost = merged.get("quantity"), merged.get("unit_cost")
    if "amount" not in changes and ({"quantity", "unit_cost"} & changes.keys()) and quantity and unit_cost:
        merged["amount"] = money_text(Decimal(quantity) * Decimal(unit_cost))
    if merged.get("amount") is None:
        merged["amount"] = "0.0"


def prepare_change_order_line(holder_kind: str) -> Prepare:
    def prepare(merged: Record, existing: Record | None, changes: Record, context: Context) -> None:
        default_amount(merged, changes)
        if existing is None and merged.get("position") is None:
            holder_field = CHANGE_ORDER_LINES[holder_kind][1]
            siblings = [
                line.get("position") or 0
                for line in context.store.scan(CHANGE_ORDER_LINES[holder_kind][0], context.scope_id)
                if line[holder_field] == merged[holder_field]
            ]
            merged["position"] = max(siblings, default=0) + 1

    return prepare


def change_order_line_resource(holder_kind: str, label: str) -> Resource:
    links = (integer("commitment_line_item_id"),) if holder_kind == "commitment_change_orders" else ()
    return Resource(
        kind=CHANGE_ORDER_LINES[holder_kind][0],
        label=label,
        fields=(
            reference("wbs_code_id", "wbs_codes", required=True),
            money("amount"),
            money("quantity"),
            money("unit_cost"),
            string("uom"),
            text("description"),
            enum("extended_type", ("manual", "calculated"), default="manual"),
            integer("tax_code_id"),
            integer("position"),
            *links,
            integer("prime_line_item_id"),
        ),
        rules=(approved_lock(holder_kind), contract_line_rule(holder_kind)),
        prepare=prepare_change_order_line(holder_kind),
    )


COMMITMENT_CHANGE_ORDER_LINE_ITEMS = change_order_line_resource(
    "commitment_change_orders", "CommitmentChangeOrderLineItem"
)
PRIME_CHANGE_ORDER_LINE_ITEMS = change_order_line_resource("prime_change_orders", "PrimeChangeOrderLineItem")


def whole_number(changes: Record) -> Record:
    """A budget change's ``number`` is a JSON number: 3 and 3.0 are both "3"."""
    number_ = changes.get("number")
    if isinstance(number_, str) and number_.endswith(".0") and number_[:-2].isdigit():
        return {**changes, "number": number_[:-2]}
    return changes


def prepare_budget_change(merged: Record, existing: Record | None, changes: Record, context: Context) -> None:
    if existing is None and is_blank(merged.get("number")):
        taken = [record["number"] for record in context.store.scan("budget_changes", context.scope_id)]
        merged["number"] = next_number(taken)


BUDGET_CHANGES = Resource(
    kind="budget_changes",
    label="BudgetChange",
    fields=(
        string("number"),
        enum("status", BUDGET_CHANGE_STATUSES, required=True),
        string("title"),
        text("description"),
    ),
    unique=(Unique(("number",)),),
    normalize=whole_number,
    prepare=prepare_budget_change,
)

ADJUSTMENT_LINE_ITEMS = Resource(
    kind="budget_change_adjustment_line_items",
    label="AdjustmentLineItem",
    fields=(
        Field("adjustment_number", "integer", required=True),
        reference("wbs_code_id", "wbs_codes", required=True),
        enum("type", ("budget_change", "change_event"), default="budget_change"),
        money("amount"),
        money("quantity"),
        money("unit_cost"),
        string("uom"),
        text("description"),
        text("comment"),
        enum("calculation_strategy", ("automatic", "manual")),
        string("ref"),
        integer("change_event_line_item_id"),
    ),
    prepare=lambda merged, existing, changes, context: default_amount(merged, changes),
)


def distinct_lines_rule(merged: Record, existing: Record | None, context: Context) -> Errors:
    source, target = merged.get("from_budget_line_item_id"), merged.get("to_budget_line_item_id")
    if source is not None and source == target:
        return {"to_budget_line_item_id": ["must differ from from_budget_line_item_id"]}
    return {}


BUDGET_MODIFICATIONS = Resource(
    kind="budget_modifications",
    label="BudgetModification",
    fields=(
        reference("from_budget_line_item_id", "budget_line_items"),
        reference("to_budget_line_item_id", "budget_line_items", required=True),
        Field("transfer_amount", "money", required=True),
        text("notes"),
        *origin_fields(),
    ),
    rules=(distinct_lines_rule,),
)
