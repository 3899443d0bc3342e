"""ERP contracts (billing) → Procore prime contracts and their schedule-of-values lines.

Procore has no sync endpoint for prime contract headers: each is one POST (after a look-up by
origin_id) or one PATCH. The owner/client is the customer's Procore vendor. Lines go through
``prime_contracts/{id}/line_items/sync``, one call per contract.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flows.contract_lines import ProcoreContractHeader, header_values, line_spec, status_of
from flows.customers import CUSTOMERS
from flows.projects import PROJECTS
from tasks.models import ErpRow
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import CreateEachWriter

STATUSES = ("Draft", "Out For Bid", "Out For Signature", "Approved", "Complete", "Terminated")


class ErpPrimeContract(ErpRow):
    contract_number: str
    project_number: str | None = None
    customer_code: str | None = None
    title: str | None = None
    status: str | None = None
    executed: bool | None = None
    retainage_percent: Decimal | None = None
    contract_date: date | None = None
    description: str | None = None
    updated_at: datetime | None = None


class ProcorePrimeContract(ProcoreContractHeader):
    """A prime contract's header: the owner/client is ``vendor_id``."""


def map_prime_contract(row: ErpPrimeContract, refs: Refs) -> Mapped:
    warnings: list[str] = []
    project_id = refs.id(PROJECTS, row.project_number, f"project {row.project_number}")
    owner = refs.id(CUSTOMERS, row.customer_code, f"customer {row.customer_code}")
    values = header_values(row.contract_number.strip(), row, status_of(row.status, STATUSES), owner, warnings)
    return Mapped(payload=ProcorePrimeContract(**values), warnings=warnings, scope={"project_id": project_id})


PRIME_CONTRACTS = EntitySpec(
    name="prime_contracts",
    webhook_resources=("Prime Contracts",),
    title="Prime contracts",
    erp_table="prime_contracts",
    erp_model=ErpPrimeContract,
    procore_model=ProcorePrimeContract,
    map_record=map_prime_contract,
    key_field="contract_number",
    target=Target("/rest/v1.0/prime_contract", method="POST", body_scope=("project_id",)),
    writer=CreateEachWriter("/rest/v1.0/prime_contract", "/rest/v1.0/prime_contract/{id}", "prime_contract"),
    list_path="/rest/v1.0/prime_contracts",
    list_scope=("project_id",),
    parents=(PROJECTS, CUSTOMERS),
)

PRIME_CONTRACT_LINES = line_spec(
    "prime_contract_lines", "Prime contract lines", PRIME_CONTRACTS, "prime_contract_lines",
    "/rest/v1.0/prime_contracts/{prime_contract_id}/line_items/sync", "prime_contract_id", sends_id=True,
    webhook="Prime Contract Line Items",
)
