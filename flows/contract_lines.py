"""What prime contracts, subcontracts and purchase orders share: header fields and SOV lines.

The three headers carry the same core fields (``ProcoreContractHeader``, ``header_values``), and
the three line syncs take the same items (amount, description, WBS code, quantity, unit cost)
under a path that names their contract; one ``line_spec`` builds each line entity from its
contract's spec, so the three stay alike by construction.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from flows.budget import wbs_of
from flows.cost_structure import WBS_CODES
from flows.projects import PROJECTS
from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.models import ErpRow, ProcoreModel, money
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import SyncWriter


class ProcoreContractHeader(ProcoreModel):
    number: str
    title: str | None = None
    status: str
    executed: bool = False
    retainage_percent: str | None = None
    contract_date: date | None = None
    description: str | None = None
    vendor_id: int


def status_of(value: str | None, allowed: tuple[str, ...]) -> str:
    match = {s.lower(): s for s in allowed}.get((value or "Draft").strip().lower())
    if match is None:
        raise InvalidRecord(f"status {value!r} is not one of Procore's: {', '.join(allowed)}")
    return match


def header_values(number: str, row: Any, status: str, vendor_id: int, warnings: list[str]) -> dict[str, Any]:
    """The shared header fields, from an ERP contract row (title, dates, retainage, description)."""
    return dict(
        number=number,
        title=fields.truncated(fields.clean_text(row.title), "title", 255, warnings),
        status=status,
        executed=bool(row.executed),
        retainage_percent=money(getattr(row, "retainage_percent", None)),  # purchase orders have none
        contract_date=row.contract_date,
        description=fields.truncated(fields.clean_text(row.description), "description", fields.DESCRIPTION_MAX, warnings),
        vendor_id=vendor_id,
    )


class ErpContractLine(ErpRow):
    """A prime contract's line; the other line tables name their contract's key column and may
    add fields, so each table's model is its template's columns (``app.templates``)."""

    line_key: str
    contract_number: str | None = None
    line_number: int | None = None
    sub_job_code: str | None = None
    cost_code: str | None = None
    cost_type: str | None = None
    description: str | None = None
    amount: Decimal | None = None
    updated_at: datetime | None = None


class ErpSubcontractLine(ErpContractLine):
    contract_number: str | None = Field(default=None, validation_alias="subcontract_number")


class ErpPurchaseOrderLine(ErpContractLine):
    contract_number: str | None = Field(default=None, validation_alias="po_number")
    quantity: Decimal | None = None
    unit_cost: Decimal | None = None
    uom: str | None = None


class ProcoreContractLine(ProcoreModel):
    amount: str
    description: str | None = None
    wbs_code_id: int
    quantity: str | None = None
    unit_cost: str | None = None
    uom: str | None = None


def line_mapper(contract: EntitySpec, contract_id_field: str):  # noqa: ANN201 - returns a mapper
    def map_line(line: ErpContractLine, refs: Refs) -> Mapped:
        if line.amount is None:
            raise InvalidRecord("amount is missing")
        label = f"{contract.display_name.lower().rstrip('s')} {line.contract_number}"
        header = refs.erp_row(contract, line.contract_number, label)
        project = header.get("project_number")
        contract_id = refs.id(contract, line.contract_number, label)
        warnings: list[str] = []
        payload = ProcoreContractLine(
            amount=money(line.amount) or "0.00",
            description=fields.truncated(fields.clean_text(line.description), "description", fields.DESCRIPTION_MAX, warnings),
            wbs_code_id=wbs_of(refs, project, line.sub_job_code, line.cost_code, line.cost_type),
            **priced(line),
        )
        project_id = refs.id(PROJECTS, project, f"project {project}")
        return Mapped(payload=payload, warnings=warnings, scope={"project_id": project_id, contract_id_field: contract_id})

    return map_line


def priced(line: ErpContractLine) -> dict[str, str | None]:
    """Quantity, unit cost and unit of measure, where the line's table has them."""
    if not isinstance(line, ErpPurchaseOrderLine):
        return {}
    return dict(quantity=None if line.quantity is None else format(line.quantity, "f"),
                unit_cost=None if line.unit_cost is None else format(line.unit_cost, "f"),
                uom=fields.clean_text(line.uom))


def line_spec(name: str, title: str, contract: EntitySpec, erp_table: str, path: str, contract_id_field: str,
              *, sends_id: bool, webhook: str, erp_model: type[ErpContractLine] = ErpContractLine) -> EntitySpec:
    return EntitySpec(
        name=name,
        webhook_resources=(webhook,),
        title=title,
        erp_table=erp_table,
        erp_model=erp_model,
        procore_model=ProcoreContractLine,
        map_record=line_mapper(contract, contract_id_field),
        key_field="line_key",
        target=Target(path, body_scope=(), query_scope=("project_id",)),
        writer=SyncWriter(),
        list_path=path.removesuffix("/sync"),
        list_scope=("project_id",),
        parents=(contract, WBS_CODES),
        sends_id=sends_id,
        money_field="amount",
    )

