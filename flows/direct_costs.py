"""ERP project costs → Procore direct costs and their lines.

Headers go through each project's direct cost sync, lines through its line item sync (never two
at once per project: Procore answers 409, which the client waits out). Procore locks a direct
cost for good once an integration has set its origin_id, so a changed ERP cost is never pushed
over it: the run fails that record with a message instead.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flows.budget import wbs_of
from flows.cost_structure import WBS_CODES
from flows.projects import PROJECTS
from flows.vendors import VENDORS
from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import SyncWriter

TYPES = ("invoice", "expense", "payroll")
STATUSES = ("draft", "pending", "revise_and_resubmit", "approved")


class ErpDirectCost(ErpRow):
    direct_cost_key: str
    project_number: str | None = None
    supplier_code: str | None = None
    direct_cost_type: str | None = None
    invoice_number: str | None = None
    direct_cost_date: date | None = None
    received_date: date | None = None
    status: str | None = None
    description: str | None = None
    updated_at: datetime | None = None


class ProcoreDirectCost(ProcoreModel):
    direct_cost_type: str
    status: str
    vendor_id: int
    invoice_number: str | None = None
    direct_cost_date: date | None = None
    received_date: date | None = None
    description: str | None = None


def one_of(value: str | None, allowed: tuple[str, ...], field: str, default: str) -> str:
    chosen = (value or default).strip().lower()
    if chosen not in allowed:
        raise InvalidRecord(f"{field} {value!r} is not one of Procore's: {', '.join(allowed)}")
    return chosen


def map_direct_cost(row: ErpDirectCost, refs: Refs) -> Mapped:
    kind = one_of(row.direct_cost_type, TYPES, "direct_cost_type", "invoice")
    invoice = fields.clean_text(row.invoice_number)
    if kind == "invoice" and not invoice:
        raise InvalidRecord("invoice_number is blank; Procore requires it on an invoice")
    warnings: list[str] = []
    project_id = refs.id(PROJECTS, row.project_number, f"project {row.project_number}")
    payload = ProcoreDirectCost(
        direct_cost_type=kind,
        status=one_of(row.status, STATUSES, "status", "draft"),
        vendor_id=refs.id(VENDORS, row.supplier_code, f"supplier {row.supplier_code}"),
        invoice_number=invoice,
        direct_cost_date=row.direct_cost_date,
        received_date=row.received_date,
        description=fields.truncated(fields.clean_text(row.description), "description", fields.DESCRIPTION_MAX, warnings),
    )
    return Mapped(payload=payload, warnings=warnings, scope={"project_id": project_id})


DIRECT_COSTS = EntitySpec(
    name="direct_costs",
    webhook_resources=("Direct Costs",),
    title="Direct costs",
    erp_table="direct_costs",
    erp_model=ErpDirectCost,
    procore_model=ProcoreDirectCost,
    map_record=map_direct_cost,
    key_field="direct_cost_key",
    target=Target("/rest/v1.0/projects/{project_id}/direct_costs/sync", body_scope=()),
    writer=SyncWriter(),
    list_path="/rest/v1.1/projects/{project_id}/direct_costs",
    list_scope=(),
    parents=(PROJECTS, VENDORS),
    locked_once_synced=True,
)


class ErpDirectCostLine(ErpRow):
    line_key: str
    direct_cost_key: str | None = None
    line_number: int | None = None
    sub_job_code: str | None = None
    cost_code: str | None = None
    cost_type: str | None = None
    description: str | None = None
    amount: Decimal | None = None
    updated_at: datetime | None = None


class ProcoreDirectCostLine(ProcoreModel):
    direct_cost_id: int
    wbs_code_id: int
    amount: Decimal
    description: str | None = None


def map_direct_cost_line(line: ErpDirectCostLine, refs: Refs) -> Mapped:
    if line.amount is None:
        raise InvalidRecord("amount is missing")
    label = f"direct cost {line.direct_cost_key}"
    project = refs.erp_row(DIRECT_COSTS, line.direct_cost_key, label).get("project_number")
    warnings: list[str] = []
    payload = ProcoreDirectCostLine(
        direct_cost_id=refs.id(DIRECT_COSTS, line.direct_cost_key, label),
        wbs_code_id=wbs_of(refs, project, line.sub_job_code, line.cost_code, line.cost_type),
        amount=line.amount,
        description=fields.truncated(fields.clean_text(line.description), "description", fields.DESCRIPTION_MAX, warnings),
    )
    project_id = refs.id(PROJECTS, project, f"project {project}")
    return Mapped(payload=payload, warnings=warnings, scope={"project_id": project_id})


DIRECT_COST_LINES = EntitySpec(
    name="direct_cost_lines",
    webhook_resources=("Direct Cost Line Items",),
    title="Direct cost lines",
    erp_table="direct_cost_lines",
    erp_model=ErpDirectCostLine,
    procore_model=ProcoreDirectCostLine,
    map_record=map_direct_cost_line,
    key_field="line_key",
    target=Target("/rest/v1.0/projects/{project_id}/direct_costs/line_items/sync", body_scope=()),
    writer=SyncWriter(),
    list_path="/rest/v1.0/projects/{project_id}/direct_costs/line_items",
    list_scope=(),
    parents=(DIRECT_COSTS, WBS_CODES),
    locked_once_synced=True,
    money_field="amount",
    read_as={"direct_cost_id": "holder_id"},
)
