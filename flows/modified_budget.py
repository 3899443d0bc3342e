"""Procore's modified budget → the ERP: budget changes, or budget modifications on the legacy tool.

Once a project's budget is locked, the field changes it in Procore: **Budget Changes** (Procore's
tool for every new company; each change holds adjustment lines, a transfer being two lines with
the same adjustment number and opposite amounts) or, on companies that have not migrated, the
legacy **Budget Modifications** (a transfer from one budget line to another). ``settings.budget_tool``
says which one the company uses; sync-all runs that one.

Neither list takes an ``updated_at`` filter, so each run reads the project's list (one call) and
only the records updated in the window (or new to the ERP) are read in full; a record the ERP
holds that the list no longer shows was deleted in Procore and is marked so. Lines land on the
ERP's WBS codes (budget changes) or budget lines (modifications); one the ERP does not have blocks
the record, naming it. A budget modification carrying an ``origin_id`` was written by an
integration (an ERP pushing its own budget), not by the field: it is skipped as an echo.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from connectors.erp_sink import SinkDocument, SinkTable
from connectors.procore import ProcoreClient
from flows.budget import BUDGET_LINES
from flows.change_orders import amount, exact, text, wbs_parts
from flows.cost_structure import WBS_CODES
from procore_sync.errors import NotFound
from tasks.inbound import Changes, InboundMapped, InboundSpec, Known, Project, Window
from tasks.refs import Refs


class ErpBudgetChange(BaseModel):
    procore_id: int
    project_number: str
    number: str | None
    title: str | None
    status: str  # draft | under_review | approved | void
    description: str | None
    amount: Decimal  # the net of its lines (a transfer nets to 0)
    deleted: bool = False


class ErpBudgetChangeLine(BaseModel):
    line_key: str  # "<type>:<id>": Procore's line ids are unique per line type
    budget_change_procore_id: int
    adjustment_number: int | None
    line_type: str | None  # budget_change | change_event
    wbs_key: str
    sub_job_code: str | None
    cost_code: str | None
    cost_type: str | None
    description: str | None
    comment: str | None
    quantity: Decimal | None
    unit_cost: Decimal | None
    uom: str | None
    amount: Decimal


class ErpBudgetModification(BaseModel):
    procore_id: int
    project_number: str
    from_budget_line_key: str
    to_budget_line_key: str
    transfer_amount: Decimal
    notes: str | None
    deleted: bool = False


def changed_in_list(records: list[dict[str, Any]], window: Window,
                    known: Known) -> tuple[list[dict[str, Any]], list[int]]:
    """From a project's whole list: the records to read (updated in the window, or new to the
    ERP, and not unchanged since their import) and the known ones the list no longer has
    (deleted in Procore)."""
    present = {int(record["id"]) for record in records}
    changed = [r for r in records if (window.contains(r.get("updated_at")) or int(r["id"]) not in known.rows)
               and not known.unchanged(r)]
    deleted = [procore_id for procore_id, row in known.rows.items()
               if procore_id not in present and not row.get("deleted")]
    return changed, deleted


# --- budget changes ---------------------------------------------------------------------------


def budget_changes_path(project: Project) -> str:
    return f"/rest/v1.0/projects/{project.procore_id}/budget_changes"


def read_budget_changes(client: ProcoreClient, context: dict[str, Any], project: Project, window: Window,
                        known: Known) -> Changes:
    summaries = client.get(budget_changes_path(project), exact_numbers=True).get("data", [])
    changed, deleted = changed_in_list(summaries, window, known)
    return Changes([read_budget_change(client, context, project, int(r["id"])) for r in changed], deleted)


def read_budget_change(client: ProcoreClient, context: dict[str, Any], project: Project,
                       record_id: int) -> dict[str, Any]:
    return client.get(f"{budget_changes_path(project)}/{record_id}", exact_numbers=True)["data"]


def read_one_budget_change(client: ProcoreClient, context: dict[str, Any], project: Project,
                           record_id: int) -> dict[str, Any] | None:
    try:
        return read_budget_change(client, context, project, record_id)
    except NotFound:
        return None


def map_budget_change(record: dict[str, Any], project: Project, refs: Refs) -> InboundMapped:
    lines = [
        ErpBudgetChangeLine(
            line_key=f"{line.get('type') or 'budget_change'}:{line['id']}",
            budget_change_procore_id=int(record["id"]),
            adjustment_number=line.get("adjustment_number"),
            line_type=text(line.get("type")),
            **wbs_parts(refs, line),
            description=text(line.get("description")),
            comment=text(line.get("comment")),
            quantity=exact(line.get("quantity"), "quantity"),
            unit_cost=exact(line.get("unit_cost"), "unit_cost"),
            uom=text(line.get("uom")),
            amount=amount(line.get("amount")),
        )
        for line in record.get("adjustment_line_items") or []
    ]
    header = ErpBudgetChange(
        procore_id=int(record["id"]),
        project_number=project.number,
        number=text(record.get("number")),
        title=text(record.get("title")),
        status=str(record.get("status") or "draft"),
        description=text(record.get("description")),
        amount=sum((line.amount for line in lines), Decimal("0")),
    )
    return InboundMapped(SinkDocument(header, lines))


BUDGET_CHANGES = InboundSpec(
    name="budget_changes",
    webhook_resources=("Budget Changes", "Budget Change Adjustment Line Items"),
    webhook_project_resources=("Budget Change Adjustment Line Items",),
    title="Budget changes (modified budget)",
    header=SinkTable("budget_changes", ErpBudgetChange),
    lines=SinkTable("budget_change_lines", ErpBudgetChangeLine, parent="budget_change_procore_id"),
    read=read_budget_changes,
    read_one=read_one_budget_change,
    map_record=map_budget_change,
    probe_path="/rest/v1.0/projects/{project_id}/budget_changes",
    parents=(WBS_CODES,),
)


# --- budget modifications (legacy) ------------------------------------------------------------


def modifications_path(project: Project) -> str:
    return f"/rest/v1.0/projects/{project.procore_id}/budget_modifications"


def read_modifications(client: ProcoreClient, context: dict[str, Any], project: Project, window: Window,
                       known: Known) -> Changes:
    listed = client.paginate(modifications_path(project), exact_numbers=True)
    changed, deleted = changed_in_list(list(listed), window, known)
    return Changes(changed, deleted)


def read_one_modification(client: ProcoreClient, context: dict[str, Any], project: Project,
                          record_id: int) -> dict[str, Any] | None:
    try:
        return client.get(f"{modifications_path(project)}/{record_id}", exact_numbers=True)
    except NotFound:
        return None


def map_modification(record: dict[str, Any], project: Project, refs: Refs) -> InboundMapped:
    ends = {}
    for end in ("from", "to"):
        line_id = record.get(f"{end}_budget_line_item_id")
        _, ends[end] = refs.erp_key((BUDGET_LINES,), line_id, f"budget line {line_id} (Procore id)")
    header = ErpBudgetModification(
        procore_id=int(record["id"]),
        project_number=project.number,
        from_budget_line_key=ends["from"],
        to_budget_line_key=ends["to"],
        transfer_amount=amount(record.get("transfer_amount"), "transfer_amount"),
        notes=text(record.get("notes")),
    )
    return InboundMapped(SinkDocument(header))


def integration_echo(record: Mapping[str, Any]) -> str | None:
    origin = record.get("origin_id")
    if origin in (None, ""):
        return None
    return (f"written by an integration (origin_id {origin}), not changed in the field: "
            "an echo of the ERP's own budget, not imported")


BUDGET_MODIFICATIONS = InboundSpec(
    name="budget_modifications",
    webhook_resources=("Budget Modifications",),
    title="Budget modifications (legacy modified budget)",
    header=SinkTable("budget_modifications", ErpBudgetModification),
    lines=None,
    read=read_modifications,
    read_one=read_one_modification,
    map_record=map_modification,
    probe_path="/rest/v1.0/projects/{project_id}/budget_modifications",
    parents=(BUDGET_LINES,),
    echo=integration_echo,
)
