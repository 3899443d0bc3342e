"""ERP original budget → Procore budget line items, one ``budget_line_items/sync`` per project.

Budget lines have no origin_id in Procore. Each ERP budget line budgets one WBS code of its
project, and Procore keeps one line per WBS code, so the WBS code is the natural key: the answer
is matched back by it, and the state keeps the ERP line → Procore line id map.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.procore import ProcoreClient
from flows.cost_structure import WBS_CODES, wbs_key
from flows.projects import PROJECTS
from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.outcomes import field_of
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, NaturalKey, Target
from tasks.writers import KeyedBatchWriter


class ErpBudgetLine(ErpRow):
    budget_line_key: str
    project_number: str | None = None
    sub_job_code: str | None = None
    cost_code: str | None = None
    cost_type: str | None = None
    amount: Decimal | None = None
    quantity: Decimal | None = None
    unit_cost: Decimal | None = None
    uom: str | None = None
    updated_at: datetime | None = None


class ProcoreBudgetLine(ProcoreModel):
    wbs_code_id: int
    original_budget_amount: Decimal
    quantity: Decimal | None = None
    unit_cost: Decimal | None = None
    uom: str | None = None


def wbs_of(refs: Refs, project: str | None, sub_job: str | None, cost_code: str | None, cost_type: str | None) -> int:
    """The WBS code a money line points at, named the way an operator reads it."""
    where = f"{sub_job}/" if sub_job else ""
    what = f"cost code {where}{cost_code} with cost type {cost_type} in project {project}"
    return refs.id(WBS_CODES, wbs_key(str(project), sub_job, str(cost_code), str(cost_type)), what)


def map_budget_line(line: ErpBudgetLine, refs: Refs) -> Mapped:
    if line.amount is None:
        raise InvalidRecord("amount is missing")
    project_id = refs.id(PROJECTS, line.project_number, f"project {line.project_number}")
    payload = ProcoreBudgetLine(
        wbs_code_id=wbs_of(refs, line.project_number, line.sub_job_code, line.cost_code, line.cost_type),
        original_budget_amount=line.amount,
        quantity=line.quantity,
        unit_cost=line.unit_cost,
        uom=fields.clean_text(line.uom),
    )
    return Mapped(payload=payload, scope={"project_id": project_id})


def budget_detail_rows(client: ProcoreClient, scope: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Procore has no list of budget line items: read them as the rows of the project's budget view."""
    params = {"project_id": scope["project_id"]}
    views = list(client.paginate("/rest/v1.0/budget_views", params))
    if not views:
        return []
    return client.paginate(f"/rest/v1.0/budget_views/{views[0]['id']}/detail_rows", params)


BUDGET_LINES = EntitySpec(
    name="budget_lines",
    webhook_resources=("Budget Line Items",),
    title="Original budget lines",
    erp_table="budget_lines",
    erp_model=ErpBudgetLine,
    procore_model=ProcoreBudgetLine,
    map_record=map_budget_line,
    key_field="budget_line_key",
    target=Target("/rest/v1.0/budget_line_items/sync", method="POST", body_scope=("project_id",),
                  items_key="budget_line_items"),
    writer=KeyedBatchWriter(match=lambda line: field_of(line, "wbs_code_id")),
    list_path="/rest/v1.0/budget_views/{budget_view_id}/detail_rows",
    list_scope=("project_id",),
    parents=(PROJECTS, WBS_CODES),
    uses_origin_id=False,
    money_field="original_budget_amount",
    lister=budget_detail_rows,
    natural_key=NaturalKey("WBS code", lambda line, scope: (scope.get("project_id"), line.get("wbs_code_id")),
                           "Procore keeps one budget line per WBS code"),
)
