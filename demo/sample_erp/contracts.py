"""Prime contracts (billing the owner), subcontracts and purchase orders, with their lines.

Headers refer to a project and a customer or supplier; bad ones name a project or supplier the
ERP does not have, or a status Procore does not know; blocked ones are on a bad project or with
a bad customer or supplier. A few subcontract and purchase order descriptions are over-long (cut,
with a warning). Lines come from ``lines.generate_lines``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from demo.sample_erp.base import (
    DESCRIPTION_LIMIT,
    UNIT,
    Column,
    Company,
    Ref,
    Row,
    Spoiler,
    TableData,
    columns,
    day_between,
    defect_counts,
    money,
    split,
    stamp,
    weighted,
)
from demo.sample_erp.lines import TEN_OR_SO, LineSpec, generate_lines, money_lines
from demo.sample_erp.words import UNITS

PRIME_COLUMNS = columns(
    "contract_number VARCHAR, project_number VARCHAR, customer_code VARCHAR, title VARCHAR, "
    "status VARCHAR, executed BOOLEAN, retainage_percent DECIMAL(5,2), contract_date DATE, "
    "description VARCHAR, updated_at TIMESTAMPTZ"
)
SUBCONTRACT_COLUMNS = columns(
    "subcontract_number VARCHAR, project_number VARCHAR, supplier_code VARCHAR, title VARCHAR, "
    "status VARCHAR, executed BOOLEAN, retainage_percent DECIMAL(5,2), contract_date DATE, "
    "description VARCHAR, updated_at TIMESTAMPTZ"
)
PO_COLUMNS = columns(
    "po_number VARCHAR, project_number VARCHAR, supplier_code VARCHAR, title VARCHAR, "
    "status VARCHAR, executed BOOLEAN, contract_date DATE, delivery_date DATE, "
    "description VARCHAR, updated_at TIMESTAMPTZ"
)
LINE_COLUMNS = (
    "line_key VARCHAR, {header} VARCHAR, line_number INTEGER, sub_job_code VARCHAR, "
    "cost_code VARCHAR, cost_type VARCHAR, description VARCHAR, {amounts}updated_at TIMESTAMPTZ"
)
# by the project's stage: not started, under way, finished
PRIME_STATUSES = {
    "planned": (("Approved", 50), ("Draft", 20), ("Out For Signature", 20), ("Out For Bid", 10)),
    "under way": (("Approved", 90), ("Out For Signature", 5), ("Terminated", 5)),
    "finished": (("Complete", 70), ("Approved", 30)),
}
SUBCONTRACT_STATUSES = (
    ("Approved", 60), ("Draft", 20), ("Out For Signature", 8), ("Out For Bid", 5),
    ("Complete", 5), ("Terminated", 1), ("Void", 1),
)
PO_STATUSES = (
    ("Approved", 50), ("Draft", 15), ("Processing", 5), ("Submitted", 10),
    ("Partially Received", 8), ("Received", 7), ("Closed", 5),
)
# Not in Procore's list for that kind (Complete and Void are subcontract statuses, not PO ones).
INVALID_STATUSES = {
    "subcontracts": ("Open", "Pending Approval", "Executed", "Closed"),
    "purchase_orders": ("Open", "Pending", "Complete", "Void"),
}
EXECUTED = {"Approved", "Complete", "Partially Received", "Received", "Closed"}
HEADER_DEFECTS = {
    "non_existent_supplier": 0.01, "bad_supplier": 0.01, "invalid_status": 0.01,
    "long_description": 0.01,
}


def _refs(party: str, parent: str) -> list[Ref]:
    return [
        ("project_number", "projects", lambda row: row["project_number"]),
        (party, parent, lambda row: row[party]),
    ]


# --- prime contracts --------------------------------------------------------------------------


def generate_prime_contracts(rng: random.Random, company: Company) -> TableData:
    customers = company.intended("customers")
    good_customers = company.keys("customers")
    rows = [
        _prime(rng, company, project, customers[rng.choice(good_customers)])
        for project in company.intended("projects").values()
    ]
    data = TableData("prime_contracts", "contract_number", PRIME_COLUMNS, rows)
    refs = _refs("customer_code", "customers")
    spoiler = Spoiler(rng, data, lambda row: company.clean(row, refs))
    plan = defect_counts(len(rows), {"non_existent_project": 0.02, "bad_customer": 0.02}, room=0.5)
    for row in spoiler.pick(plan["non_existent_project"]):
        mistyped = mistyped_project(rng, row["project_number"])
        spoiler.spoil(row, "project_number", "non_existent_project", mistyped)
    bad_customers = sorted(item["key"] for item in company.tables["customers"].bad)
    for row in spoiler.pick(plan["bad_customer"] if bad_customers else 0):
        row["customer_code"] = rng.choice(bad_customers)
    company.block(data, refs)
    return data


def _prime(rng: random.Random, company: Company, project: Row, customer: Row) -> Row:
    status = weighted(rng, PRIME_STATUSES[_stage(company, project)])
    return {
        "contract_number": f"PC-{project['project_number'].removeprefix('P-')}",
        "project_number": project["project_number"],
        "customer_code": customer["customer_code"],
        "title": f"{project['name']} - Owner Contract",
        "status": status,
        "executed": status in EXECUTED,
        "retainage_percent": Decimal(rng.choice(("5.00", "10.00"))),
        "contract_date": min(project["start_date"], company.now.date())
        - timedelta(days=rng.randint(5, 60)),
        "description": f"Lump sum agreement with {customer['name']} for the construction of "
        f"{project['name']}, {project['city']}.",
        "updated_at": stamp(rng, company.now),
    }


def _stage(company: Company, project: Row) -> str:
    today = company.now.date()
    if project["start_date"] > today:
        return "planned"
    return "finished" if project["completion_date"] < today else "under way"


def mistyped_project(rng: random.Random, number: str) -> str:
    """A project number as someone might mistype it: never one that exists (they are P-dddd)."""
    digits = number.removeprefix("P-")
    return rng.choice((f"P{digits}", f"P-0{digits}", f"{number}A"))


def generate_prime_contract_lines(rng: random.Random, company: Company) -> TableData:
    """About ten lines per prime contract, adding up to its project's total value."""
    values = {key: row["total_value"] for key, row in company.intended("projects").items()}

    def amounts(rng: random.Random, header: Row, picked: list[Row]) -> list[dict[str, object]]:
        weights = [rng.uniform(0.3, 1.7) for _ in picked]
        return [{"amount": amount} for amount in split(values[header["project_number"]], weights)]

    spec = LineSpec(
        "prime_contract_lines", "prime_contracts", "contract_number",
        _line_columns("contract_number", "amount DECIMAL(18,2)"), 3, TEN_OR_SO, {}, amounts,
    )
    return generate_lines(rng, company, spec)


def _line_columns(header: str, amounts: str) -> tuple[Column, ...]:
    return columns(LINE_COLUMNS.format(header=header, amounts=f"{amounts}, "))


# --- commitments: subcontracts and purchase orders --------------------------------------------


def generate_subcontracts(rng: random.Random, company: Company) -> TableData:
    data = TableData("subcontracts", "subcontract_number", SUBCONTRACT_COLUMNS, [])
    return _commitments(rng, company, data, "SC-", 10_001, _subcontract)


def generate_purchase_orders(rng: random.Random, company: Company) -> TableData:
    data = TableData("purchase_orders", "po_number", PO_COLUMNS, [])
    return _commitments(rng, company, data, "PO-", 20_001, _purchase_order)


Build = Callable[[random.Random, Company, str, Row, Row], Row]


def _commitments(
    rng: random.Random, company: Company, data: TableData, prefix: str, first: int, build: Build
) -> TableData:
    projects, suppliers = company.intended("projects"), good_suppliers(company)
    chosen = project_choices(rng, company, company.count(100))
    data.rows.extend(
        build(rng, company, f"{prefix}{first + n}", projects[key], rng.choice(suppliers))
        for n, key in enumerate(chosen)
    )
    refs = _refs("supplier_code", "suppliers")
    spoiler = Spoiler(rng, data, lambda row: company.clean(row, refs))
    plan = defect_counts(len(data.rows), HEADER_DEFECTS)
    for row in spoiler.pick(plan["non_existent_supplier"]):
        unknown = unknown_supplier(row["supplier_code"])
        spoiler.spoil(row, "supplier_code", "non_existent_supplier", unknown)
    bad = bad_suppliers(company)
    for row in spoiler.pick(plan["bad_supplier"] if bad else 0):
        row["supplier_code"] = rng.choice(bad)
    for row in spoiler.pick(plan["invalid_status"]):
        spoiler.spoil(row, "status", "invalid_status", rng.choice(INVALID_STATUSES[data.table]))
    for row in spoiler.pick(plan["long_description"]):
        spoiler.warn(row, "description", rng.randint(2 * DESCRIPTION_LIMIT, 3 * DESCRIPTION_LIMIT))
    company.block(data, refs)
    return data


def project_choices(rng: random.Random, company: Company, count: int) -> list[str]:
    """Projects for ``count`` documents, by contract value; at least one on a bad project."""
    projects = company.intended("projects")
    weights = [float(row["total_value"]) for row in projects.values()]
    chosen = rng.choices(list(projects), weights=weights, k=count)
    failed = [key for key in projects if company.status("projects", key) != "good"]
    if failed and count > 1 and not set(chosen) & set(failed):
        chosen[rng.randrange(count)] = rng.choice(failed)
    return chosen


def good_suppliers(company: Company) -> list[Row]:
    """Active suppliers that sync: what commitments and costs are drawn from."""
    rows = company.intended("suppliers").items()
    return [row for key, row in rows if company.status("suppliers", key) == "good" and row["is_active"]]


def bad_suppliers(company: Company) -> list[str]:
    return sorted(item["key"] for item in company.tables["suppliers"].bad)


def unknown_supplier(code: str) -> str:
    """The code under the ERP's old vendor numbering, which no supplier has any more."""
    return f"V-{code.removeprefix('S-')}"


def _signed(rng: random.Random, company: Company, project: Row) -> date:
    first = project["start_date"] - timedelta(days=30)
    return day_between(rng, first, max(first, min(company.now.date(), project["completion_date"])))


def _subcontract(
    rng: random.Random, company: Company, number: str, project: Row, supplier: Row
) -> Row:
    status, trade = weighted(rng, SUBCONTRACT_STATUSES), supplier["trade"]
    return {
        "subcontract_number": number,
        "project_number": project["project_number"],
        "supplier_code": supplier["supplier_code"],
        "title": f"{trade} Subcontract",
        "status": status,
        "executed": status in EXECUTED,
        "retainage_percent": Decimal(rng.choice(("5.00", "10.00"))),
        "contract_date": _signed(rng, company, project),
        "description": f"Furnish and install all {trade.lower()} work for {project['name']} "
        "per the plans and specifications.",
        "updated_at": stamp(rng, company.now),
    }


def _purchase_order(
    rng: random.Random, company: Company, number: str, project: Row, supplier: Row
) -> Row:
    status, trade = weighted(rng, PO_STATUSES), supplier["trade"]
    signed = _signed(rng, company, project)
    return {
        "po_number": number,
        "project_number": project["project_number"],
        "supplier_code": supplier["supplier_code"],
        "title": f"{trade} Materials" if trade != "Equipment Rental" else "Equipment Rental",
        "status": status,
        "executed": status in EXECUTED,
        "contract_date": signed,
        "delivery_date": signed + timedelta(days=rng.randint(7, 90)) if rng.random() < 0.7 else None,
        "description": f"Supply and deliver {trade.lower()} materials to the {project['name']} "
        "site.",
        "updated_at": stamp(rng, company.now),
    }


def generate_subcontract_lines(rng: random.Random, company: Company) -> TableData:
    spec = LineSpec(
        "subcontract_lines", "subcontracts", "subcontract_number",
        _line_columns("subcontract_number", "amount DECIMAL(18,2)"), 3, TEN_OR_SO, {"S": 8.0},
        money_lines(5_000, 400_000),
    )
    return generate_lines(rng, company, spec)


def generate_purchase_order_lines(rng: random.Random, company: Company) -> TableData:
    spec = LineSpec(
        "purchase_order_lines", "purchase_orders", "po_number",
        _line_columns(
            "po_number",
            "quantity DECIMAL(18,4), unit_cost DECIMAL(18,4), uom VARCHAR, amount DECIMAL(18,2)",
        ),
        3, TEN_OR_SO, {"M": 6.0, "E": 4.0}, _po_amounts,
    )
    return generate_lines(rng, company, spec)


def _po_amounts(rng: random.Random, header: Row, picked: list[Row]) -> list[dict[str, object]]:
    """Quantity × unit cost, and the amount they make, in cents."""
    lines = []
    for wbs in picked:
        uom, low, high, fewest, most = rng.choice(UNITS.get(wbs["cost_type"], UNITS["M"]))
        unit_cost = Decimal(f"{rng.uniform(low, high):.2f}").quantize(UNIT)
        quantity = Decimal(rng.randint(fewest, most)).quantize(UNIT)
        amount = money(quantity * unit_cost)
        lines.append({"quantity": quantity, "unit_cost": unit_cost, "uom": uom, "amount": amount})
    return lines
