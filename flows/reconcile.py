"""reconcile: the ERP's money against Procore's, per project and cost code, for a controller.

A deployment scheduled daily (``PROCORE_SYNC_RECONCILE_CRON``), also started from its form
(projects, money entities, rounding tolerance). Its report is three artifacts: a markdown
summary (totals per kind of money, how many cost codes differ, explained or not), the
``reconcile-money`` table (each project and cost code: original budget, committed, change
orders and direct costs in the ERP, in Procore, and the difference) and the
``reconcile-records`` table (the failed, blocked and not-yet-synced records that explain a
difference, each with its key and message, and the records behind the differences nobody
explains). A difference nothing explains fails the run, naming how many and where, so the
failed-run alert on procore-sync runs tells the operator. The work is ``tasks/reconcile_money.py``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.sources import build_sources, close_sources
from connectors.state import StateStore
from flows.budget import BUDGET_LINES
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.commitments import PURCHASE_ORDER_LINES, PURCHASE_ORDERS, SUBCONTRACT_LINES, SUBCONTRACTS
from flows.cost_structure import WBS_CODES
from flows.direct_costs import DIRECT_COST_LINES, DIRECT_COSTS
from procore_sync.errors import UnexplainedDifferences
from procore_sync.profiles import load_settings
from procore_sync.settings import Settings
from tasks.company import check_company
from tasks.inbound import InboundSpec
from tasks.reconcile_money import (
    BUDGET,
    CHANGE_ORDERS,
    COMMITTED,
    DIRECT,
    RECORD_COLUMNS,
    Entry,
    MoneyReport,
    OutboundMoney,
    Reading,
    build_report,
    chosen_projects,
    inbound_entries,
    money_rows,
    outbound_entries,
    record_rows,
    render_summary,
)
from tasks.report import artifact_key, chunk_rows

OUTBOUND = (
    OutboundMoney(BUDGET, BUDGET_LINES),
    OutboundMoney(COMMITTED, SUBCONTRACT_LINES, SUBCONTRACTS, "contract_number", "work_order_contract_id"),
    OutboundMoney(COMMITTED, PURCHASE_ORDER_LINES, PURCHASE_ORDERS, "contract_number", "purchase_order_contract_id"),
    OutboundMoney(DIRECT, DIRECT_COST_LINES, DIRECT_COSTS, "direct_cost_key"),
)
# Change orders on billing (prime) contracts change revenue, not cost: not a cost code's money.
INBOUND: tuple[tuple[str, InboundSpec], ...] = ((CHANGE_ORDERS, COMMITMENT_CHANGE_ORDERS),)
MONEY_ENTITIES = tuple(m.spec.name for m in OUTBOUND) + tuple(spec.name for _, spec in INBOUND)


class ReconcileOptions(BaseModel):
    """The run form of ``reconcile``."""

    model_config = ConfigDict(extra="forbid")

    projects: list[str] = Field(default_factory=list,
                                description="Only these ERP project numbers (empty: every project both sides know).")
    entities: list[str] = Field(default_factory=list,
                                description=f"Only the money of these entities (empty: {', '.join(MONEY_ENTITIES)}).")
    tolerance: Decimal = Field(default=Decimal("0.01"), ge=0,
                               description="Per cost code, an unexplained difference up to this amount is rounding.")

    @field_validator("entities")
    @classmethod
    def _known(cls, entities: list[str]) -> list[str]:
        unknown = [name for name in entities if name not in MONEY_ENTITIES]
        if unknown:
            raise ValueError(f"unknown money entity {', '.join(unknown)}; known: {', '.join(MONEY_ENTITIES)}")
        return entities


class ReconcileResult(BaseModel):
    """What the run returns (the artifacts hold the detail)."""

    cost_codes: int
    explained: int  # cost codes whose difference failed, blocked or unsynced records explain
    records: int


def money_entries(settings: Settings, options: ReconcileOptions) -> tuple[list[Entry], int]:
    """Every chosen record's money on both sides, and how many projects were read."""
    store, source = StateStore.open(settings), build_sources(settings)
    wanted = set(options.entities or MONEY_ENTITIES)
    try:
        with ProcoreClient(settings) as client:
            check_company(client, settings)
            context: dict[str, Any] = {"company_id": settings.company_id, "settings": settings}
            reading = Reading(client, store, source, ErpSink.open(settings), context,
                              chosen_projects(store, options.projects), WBS_CODES)
            entries = [e for money in OUTBOUND if money.spec.name in wanted for e in outbound_entries(money, reading)]
            entries += [e for category, spec in INBOUND if spec.name in wanted
                        for e in inbound_entries(category, spec, reading)]
    finally:
        close_sources(source)
    return entries, len(reading.projects)


def publish(report: MoneyReport, projects: int) -> None:
    create_markdown_artifact(markdown=render_summary(report, projects), key="reconcile-summary",
                             description="reconcile: ERP and Procore money per project and cost code")
    empty = {"verdict": "no money in the chosen projects"}
    publish_table("reconcile-money", money_rows(report), empty,
                  "money per project and cost code (difference = ERP − Procore)")
    publish_table("reconcile-records", record_rows(report), dict.fromkeys(RECORD_COLUMNS, "") | {"message": "none"},
                  "the records behind the differences")


def publish_table(key: str, rows: list[dict[str, Any]], empty: dict[str, Any], what: str) -> None:
    """Chunked as the sync report's tables are, each part under the artifact size cap."""
    chunks = chunk_rows(rows)
    for number, chunk in enumerate(chunks, start=1):
        part = f" (part {number} of {len(chunks)})" if len(chunks) > 1 else ""
        create_table_artifact(table=chunk or [empty], key=artifact_key(key, str(number)) if number > 1 else key,
                              description=f"reconcile: {len(rows)} rows, {what}{part}")


@flow(name="reconcile", description=__doc__)
def reconcile_money(options: ReconcileOptions = ReconcileOptions(), profile: str | None = None) -> ReconcileResult:
    """Reconcile the ERP's money with Procore's; a failed run when a difference is unexplained."""
    entries, projects = money_entries(load_settings(profile), options)
    report = build_report(entries, options.tolerance)
    publish(report, projects)
    if failure := report.failure():
        raise UnexplainedDifferences(failure)
    return ReconcileResult(cost_codes=len({line.cost_code for line in report.lines}),
                           explained=len(report.explained()),
                           records=sum(e.worth_listing for e in entries))
