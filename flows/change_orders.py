"""Procore change orders → the ERP: on subcontracts and purchase orders, and on billing contracts.

Change orders are born in Procore, in the field; the ERP needs them to pay and to bill. Both kinds
are read the same way, per project:

- the changed ones: ``GET /rest/v1.0/projects/{id}/commitment_change_orders`` (or
  ``prime_change_orders``) with ``filters[updated_at]`` set to the run's window; the list is one
  answer per project (Procore pages neither), and adding, changing or removing a line moves the
  change order's ``updated_at``, so lines are read only for the change orders that changed:
  ``GET /rest/v2.0/companies/{c}/projects/{p}/<kind>/{id}/line_items``, 100 per page;
- the deleted ones: a change order list cannot show deleted records, but its package can:
  ``GET /rest/v1.0/change_order_packages?filters[include_deleted]=only`` in the window gives
  the packages deleted, matched to the change orders the ERP holds by ``legacy_package_id``.

Each change order lands in the ERP linked to the ERP contract it changes (the state maps
Procore's contract id back to the ERP key), with its lines on the ERP's WBS codes (sub job, cost
code, cost type) and, where Procore links them, the contract lines they change. A change order on
a contract the ERP does not have (one created in Procore) is blocked, naming the contract, and so
is one with a line on a WBS code the ERP does not have. Voided ones land with status ``void``;
deleted ones stay, marked ``deleted``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from connectors.erp_sink import SinkDocument, SinkTable
from connectors.procore import ProcoreClient
from flows.commitments import PURCHASE_ORDER_LINES, PURCHASE_ORDERS, SUBCONTRACT_LINES, SUBCONTRACTS
from flows.cost_structure import WBS_CODES
from flows.prime_contracts import PRIME_CONTRACT_LINES, PRIME_CONTRACTS
from procore_sync.errors import InvalidRecord, NotFound
from tasks.inbound import Changes, InboundMapped, InboundSpec, Known, Project, Window
from tasks.refs import Refs
from tasks.spec import EntitySpec

V2_PER_PAGE = 100  # REST v2's maximum page


class ErpChangeOrder(BaseModel):
    """A change order as the ERP keeps it (tables ``commitment_change_orders`` and
    ``prime_change_orders``)."""

    procore_id: int
    project_number: str
    contract_kind: str  # subcontracts | purchase_orders | prime_contracts: the ERP table
    contract_number: str  # the ERP key of the contract it changes
    number: str | None
    title: str | None
    status: str
    executed: bool | None
    revision: int | None
    due_date: date | None
    description: str | None
    amount: Decimal  # the sum of its lines
    legacy_package_id: int | None
    deleted: bool = False


class ErpChangeOrderLine(BaseModel):
    procore_id: int
    change_order_procore_id: int
    position: int | None
    wbs_key: str  # the ERP key of the WBS code, and its parts below
    sub_job_code: str | None
    cost_code: str | None
    cost_type: str | None
    contract_line_key: str | None  # the ERP key of the contract line it changes, when Procore links one
    description: str | None
    quantity: Decimal | None
    unit_cost: Decimal | None
    uom: str | None
    amount: Decimal


def exact(value: Any, name: str) -> Decimal | None:
    """A Procore number (money, quantity) as the exact decimal Procore holds; None when absent.

    Procore writes amounts as JSON numbers or decimal strings; the readers decode its answers
    with ``exact_numbers``, so a ``float`` here would mean digits already lost on the way: a
    defect of procore-sync, raised, never imported rounded. Whether the ERP's columns hold the
    value is the sink's question (``connectors.erp_sink.ERP_DECIMAL``), asked of every row.
    """
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise TypeError(f"{name} {value!r} was decoded as a float: read Procore with exact_numbers=True")
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise InvalidRecord(f"{name} {value!r} is not a number")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidRecord(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise InvalidRecord(f"{name} {value!r} is not a finite number")
    return number


def amount(value: Any, name: str = "amount") -> Decimal:
    """Money a record always has: Procore shows no amount as 0."""
    return exact(value, name) or Decimal("0")


def text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def wbs_parts(refs: Refs, line: Mapping[str, Any]) -> dict[str, Any]:
    """The ERP's WBS code of a Procore line: its key, sub job, cost code and cost type."""
    code = line.get("wbs_code") or {}
    flat = code.get("flat_code") if isinstance(code, dict) else None
    what = f"WBS code {flat} (Procore {line.get('wbs_code_id')})" if flat else f"WBS code {line.get('wbs_code_id')}"
    _, key = refs.erp_key((WBS_CODES,), line.get("wbs_code_id"), what)
    row = refs.erp_row(WBS_CODES, key)
    return {"wbs_key": key, "sub_job_code": text(row.get("sub_job_code")), "cost_code": text(row.get("cost_code")),
            "cost_type": text(row.get("cost_type"))}


@dataclass(frozen=True)
class ChangeOrderKind:
    """What differs between commitment and prime change orders."""

    name: str
    title: str
    collection: str  # commitment_change_orders | prime_change_orders
    contracts: tuple[EntitySpec, ...]
    contract_lines: tuple[EntitySpec, ...]
    line_link: str  # the line field naming the contract line it changes
    contract_label: Callable[[Mapping[str, Any]], str]

    def list_path(self, project: Project) -> str:
        return f"/rest/v1.0/projects/{project.procore_id}/{self.collection}"

    def lines_path(self, context: Mapping[str, Any], project: Project, change_order_id: Any) -> str:
        return (f"/rest/v2.0/companies/{context['company_id']}/projects/{project.procore_id}"
                f"/{self.collection}/{change_order_id}/line_items")

    def with_lines(self, client: ProcoreClient, context: Mapping[str, Any], project: Project,
                   record: dict[str, Any]) -> dict[str, Any]:
        lines = client.paginate(self.lines_path(context, project, record["id"]), per_page=V2_PER_PAGE,
                                exact_numbers=True)
        return {**record, "lines": list(lines)}

    def read(self, client: ProcoreClient, context: dict[str, Any], project: Project, window: Window,
             known: Known) -> Changes:
        changed = client.get(self.list_path(project), {"filters[updated_at]": window.filter()}, exact_numbers=True)
        records = [self.with_lines(client, context, project, r) for r in changed if not known.unchanged(r)]
        return Changes(records, self.deleted(client, project, window, known))

    def deleted(self, client: ProcoreClient, project: Project, window: Window, known: Known) -> list[int]:
        """Known change orders whose package Procore shows as deleted in the window."""
        by_package = {row["legacy_package_id"]: procore_id for procore_id, row in known.rows.items()
                      if row.get("legacy_package_id") and not row.get("deleted")}
        if not by_package:
            return []
        params: dict[str, Any] = {"project_id": project.procore_id, "filters[include_deleted]": "only"}
        if window.since is not None:  # the package filter takes whole days
            params["filters[updated_at]"] = f"{window.since.date().isoformat()}...{window.until.date().isoformat()}"
        packages = client.paginate("/rest/v1.0/change_order_packages", params, exact_numbers=True)
        return [by_package[p["id"]] for p in packages if p.get("id") in by_package]

    def read_one(self, client: ProcoreClient, context: dict[str, Any], project: Project,
                 record_id: int) -> dict[str, Any] | None:
        try:
            record = client.get(f"{self.list_path(project)}/{record_id}", exact_numbers=True)
        except NotFound:
            return None
        return self.with_lines(client, context, project, record)

    def map_record(self, record: dict[str, Any], project: Project, refs: Refs) -> InboundMapped:
        contract_id = record.get("contract_id") or (record.get("contract") or {}).get("id")
        parent, contract_number = refs.erp_key(self.contracts, contract_id, self.contract_label(record))
        lines = [self.map_line(line, record, refs) for line in record.get("lines", [])]
        header = ErpChangeOrder(
            procore_id=int(record["id"]),
            project_number=project.number,
            contract_kind=parent.name,
            contract_number=contract_number,
            number=text(record.get("number")),
            title=text(record.get("title")),
            status=str(record.get("status") or "draft"),
            executed=record.get("executed"),
            revision=record.get("revision"),
            due_date=date.fromisoformat(record["due_date"]) if record.get("due_date") else None,
            description=text(record.get("description")),
            amount=sum((line.amount for line in lines), Decimal("0")),
            legacy_package_id=record.get("legacy_package_id"),
        )
        return InboundMapped(SinkDocument(header, lines))

    def map_line(self, line: dict[str, Any], record: dict[str, Any], refs: Refs) -> ErpChangeOrderLine:
        linked = line.get(self.line_link)
        contract_line = None
        if linked not in (None, ""):
            contract_line = next((keys[int(linked)] for spec in self.contract_lines
                                  if int(linked) in (keys := refs.keys_by_id(spec))), None)
        return ErpChangeOrderLine(
            procore_id=int(line["id"]),
            change_order_procore_id=int(record["id"]),
            position=int(line["position"]) if line.get("position") is not None else None,
            **wbs_parts(refs, line),
            contract_line_key=contract_line,
            description=text(line.get("description")),
            quantity=exact(line.get("quantity"), "quantity"),
            unit_cost=exact(line.get("unit_cost"), "unit_cost"),
            uom=text(line.get("uom")),
            amount=amount(line.get("amount")),
        )

    def spec(self) -> InboundSpec:
        return InboundSpec(
            name=self.name,
            # Procore names no change order webhook resource; each change order's package stands for it.
            webhook_resources=("Change Order Packages",),
            # The package has an id of its own: an event on it makes a run read its project.
            webhook_project_resources=("Change Order Packages",),
            title=self.title,
            header=SinkTable(self.name, ErpChangeOrder),
            lines=SinkTable(f"{self.name.removesuffix('s')}_lines", ErpChangeOrderLine,
                            parent="change_order_procore_id"),
            read=self.read,
            read_one=self.read_one,
            map_record=self.map_record,
            probe_path=f"/rest/v1.0/projects/{{project_id}}/{self.collection}",
            parents=(*self.contracts, *self.contract_lines, WBS_CODES),
        )


def commitment_label(record: Mapping[str, Any]) -> str:
    contract = record.get("contract") or {}
    kind = "purchase order" if contract.get("type") == "PurchaseOrderContract" else "subcontract"
    return f"{kind} {record.get('contract_id') or contract.get('id')} (Procore id)"


def prime_label(record: Mapping[str, Any]) -> str:
    return f"prime contract {record.get('contract_id') or (record.get('contract') or {}).get('id')} (Procore id)"


COMMITMENT_KIND = ChangeOrderKind(
    "commitment_change_orders", "Commitment change orders", "commitment_change_orders",
    (SUBCONTRACTS, PURCHASE_ORDERS), (SUBCONTRACT_LINES, PURCHASE_ORDER_LINES), "commitment_line_item_id",
    commitment_label,
)
PRIME_KIND = ChangeOrderKind(
    "prime_change_orders", "Prime change orders", "prime_change_orders",
    (PRIME_CONTRACTS,), (PRIME_CONTRACT_LINES,), "prime_line_item_id", prime_label,
)
COMMITMENT_CHANGE_ORDERS = COMMITMENT_KIND.spec()
PRIME_CHANGE_ORDERS = PRIME_KIND.spec()
