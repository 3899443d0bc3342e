"""ERP subcontracts and purchase orders → Procore work order and purchase order contracts.

Headers go through each project's contract sync (one call per project); lines through each
contract's line item sync (one call per contract), matched by origin_id (those syncs take no
id). The vendor is the supplier's Procore vendor: a subcontract whose supplier failed is blocked
until the supplier lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from flows.contract_lines import (
    ErpPurchaseOrderLine,
    ErpSubcontractLine,
    ProcoreContractHeader,
    header_values,
    line_spec,
    status_of,
)
from flows.projects import PROJECTS
from flows.vendors import VENDORS
from tasks.models import ErpRow
from tasks.refs import Refs
from tasks.spec import HELD, EntitySpec, Mapped, Target
from tasks.writers import SyncWriter

SUBCONTRACT_STATUSES = ("Draft", "Out For Bid", "Out For Signature", "Approved", "Complete", "Terminated", "Void")
PO_STATUSES = ("Draft", "Processing", "Submitted", "Partially Received", "Received", "Approved", "Closed")


class ErpCommitment(ErpRow):
    """What subcontracts and purchase orders share; each table's model names its key column."""

    number: str
    project_number: str | None = None
    supplier_code: str | None = None
    title: str | None = None
    status: str | None = None
    executed: bool | None = None
    contract_date: date | None = None
    description: str | None = None
    updated_at: datetime | None = None


class ErpSubcontract(ErpCommitment):
    number: str = Field(validation_alias="subcontract_number")
    retainage_percent: Decimal | None = None


class ErpPurchaseOrder(ErpCommitment):
    number: str = Field(validation_alias="po_number")
    delivery_date: date | None = None


class ProcoreCommitment(ProcoreContractHeader):
    """A work order contract's header: the subcontractor is ``vendor_id``."""

    origin_code: str


class ProcorePurchaseOrder(ProcoreCommitment):
    delivery_date: date | None = None


LOCKING = ("Approved", "Complete")


def pending_lines(refs: Refs, lines: EntitySpec, number: str) -> int:
    """Lines of this contract that could still land (not in Procore, not failed for themselves)."""
    states = refs.states(lines)
    return sum(
        1
        for key, row in refs.erp_rows(lines).items()
        if (row.get("subcontract_number") or row.get("po_number")) == number
        and not (states.get(key) and (states[key].procore_id or states[key].status == "failed"))
    )


def commitment_mapper(statuses: tuple[str, ...], model: type[ProcoreCommitment],
                      lines: Callable[[], EntitySpec]):  # noqa: ANN201
    def map_commitment(row: ErpCommitment, refs: Refs) -> Mapped:
        warnings: list[str] = []
        project_id = refs.id(PROJECTS, row.project_number, f"project {row.project_number}")
        status = status_of(row.status, statuses)
        pending = pending_lines(refs, lines(), row.number.strip()) if status in LOCKING else 0
        if pending:
            # Procore locks the schedule of values of an approved contract: lines first, then status.
            warnings.append(f"{HELD}sent as Draft until its {pending} lines are in Procore, then as {status}")
            status = "Draft"
        vendor_id = refs.id(VENDORS, row.supplier_code, f"supplier {row.supplier_code}")
        values = header_values(row.number.strip(), row, status, vendor_id, warnings) | {"origin_code": row.number.strip()}
        if isinstance(row, ErpPurchaseOrder):
            values["delivery_date"] = row.delivery_date
        return Mapped(payload=model(**values), warnings=warnings, scope={"project_id": project_id})

    return map_commitment


def commitment_spec(name: str, title: str, table: str, key: str, path: str, model: type[ProcoreCommitment],
                    statuses: tuple[str, ...], lines: Callable[[], EntitySpec], *, webhook: str,
                    erp_model: type[ErpCommitment]) -> EntitySpec:
    return EntitySpec(
        name=name,
        webhook_resources=(webhook,),
        title=title,
        erp_table=table,
        erp_model=erp_model,
        procore_model=model,
        map_record=commitment_mapper(statuses, model, lines),
        key_field=key,
        target=Target(f"{path}/sync", body_scope=("project_id",)),
        writer=SyncWriter(),
        list_path=path,
        list_scope=("project_id",),
        parents=(PROJECTS, VENDORS),
        revisit=True,
    )


# The line specs are named late (they need their contract's spec): looked up at mapping time.
SUBCONTRACTS = commitment_spec("subcontracts", "Subcontracts", "subcontracts", "subcontract_number",
                               "/rest/v1.0/work_order_contracts", ProcoreCommitment, SUBCONTRACT_STATUSES,
                               lambda: SUBCONTRACT_LINES, webhook="Work Order Contracts", erp_model=ErpSubcontract)
PURCHASE_ORDERS = commitment_spec("purchase_orders", "Purchase orders", "purchase_orders", "po_number",
                                  "/rest/v1.0/purchase_order_contracts", ProcorePurchaseOrder, PO_STATUSES,
                                  lambda: PURCHASE_ORDER_LINES, webhook="Purchase Order Contracts",
                                  erp_model=ErpPurchaseOrder)
SUBCONTRACT_LINES = line_spec(
    "subcontract_lines", "Subcontract lines", SUBCONTRACTS, "subcontract_lines",
    "/rest/v1.0/work_order_contracts/{work_order_contract_id}/line_items/sync", "work_order_contract_id",
    sends_id=False, webhook="Work Order Contract Line Items", erp_model=ErpSubcontractLine,
)
PURCHASE_ORDER_LINES = line_spec(
    "purchase_order_lines", "Purchase order lines", PURCHASE_ORDERS, "purchase_order_lines",
    "/rest/v1.0/purchase_order_contracts/{purchase_order_contract_id}/line_items/sync",
    "purchase_order_contract_id", sends_id=False, webhook="Purchase Order Contract Line Items",
    erp_model=ErpPurchaseOrderLine,
)
