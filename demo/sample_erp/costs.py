"""Direct costs (invoices, expenses, payroll posted to a project) and their 1–3 lines."""

from __future__ import annotations

import random
from datetime import timedelta

from demo.sample_erp.base import (
    Company,
    Ref,
    Row,
    Spoiler,
    TableData,
    columns,
    day_between,
    defect_counts,
    stamp,
    weighted,
)
from demo.sample_erp.contracts import (
    bad_suppliers,
    good_suppliers,
    mistyped_project,
    project_choices,
)
from demo.sample_erp.lines import LineSpec, generate_lines, money_lines

DIRECT_COST_COLUMNS = columns(
    "direct_cost_key VARCHAR, project_number VARCHAR, supplier_code VARCHAR, "
    "direct_cost_type VARCHAR, invoice_number VARCHAR, direct_cost_date DATE, received_date DATE, "
    "status VARCHAR, description VARCHAR, updated_at TIMESTAMPTZ"
)
DIRECT_COST_LINE_COLUMNS = columns(
    "line_key VARCHAR, direct_cost_key VARCHAR, line_number INTEGER, sub_job_code VARCHAR, "
    "cost_code VARCHAR, cost_type VARCHAR, description VARCHAR, amount DECIMAL(18,2), "
    "updated_at TIMESTAMPTZ"
)
TYPES = (("invoice", 70), ("expense", 20), ("payroll", 10))
STATUSES = (("approved", 55), ("pending", 20), ("draft", 20), ("revise_and_resubmit", 5))
EXPENSES = (
    "Small tools and consumables", "Permit fees", "Per diem and mileage", "Dumpster rental",
    "Courier and printing", "Site security", "Temporary power",
)
DEFECTS = {"non_existent_project": 0.008, "bad_supplier": 0.005, "missing": 0.008}
REFS: list[Ref] = [
    ("project_number", "projects", lambda row: row["project_number"]),
    ("supplier_code", "suppliers", lambda row: row["supplier_code"]),
]


def generate_direct_costs(rng: random.Random, company: Company) -> TableData:
    projects, suppliers = company.intended("projects"), good_suppliers(company)
    chosen = project_choices(rng, company, company.count(1000))
    rows = [
        _direct_cost(rng, company, f"DC-{n:06d}", projects[key], rng.choice(suppliers))
        for n, key in enumerate(chosen, start=1)
    ]
    data = TableData("direct_costs", "direct_cost_key", DIRECT_COST_COLUMNS, rows)
    _spoil(rng, company, data)
    company.block(data, REFS)
    return data


def _direct_cost(
    rng: random.Random, company: Company, key: str, project: Row, supplier: Row
) -> Row:
    kind, saved = weighted(rng, TYPES), stamp(rng, company.now)
    last = saved.date()  # posted before it was last saved
    first = max(project["start_date"] - timedelta(days=30), last - timedelta(days=365))
    posted = day_between(rng, min(first, last - timedelta(days=30)), last)
    invoice = None
    if kind == "invoice":
        invoice = f"{rng.choice(('INV-', '', 'A'))}{rng.randint(1000, 999_999)}"
    received = min(last, posted + timedelta(days=rng.randint(0, 14))) if invoice else None
    if kind == "invoice":
        described = f"{supplier['trade']} - invoice {invoice}"
    elif kind == "expense":
        described = rng.choice(EXPENSES)
    else:
        described = f"Field labor, week ending {posted.isoformat()}"
    return {
        "direct_cost_key": key,
        "project_number": project["project_number"],
        "supplier_code": supplier["supplier_code"],
        "direct_cost_type": kind,
        "invoice_number": invoice,
        "direct_cost_date": posted,
        "received_date": received,
        "status": weighted(rng, STATUSES),
        "description": described,
        "updated_at": saved,
    }


def _spoil(rng: random.Random, company: Company, data: TableData) -> None:
    plan = defect_counts(len(data.rows), DEFECTS)
    spoiler = Spoiler(rng, data, lambda row: company.clean(row, REFS))
    for row in spoiler.pick(plan["non_existent_project"]):
        mistyped = mistyped_project(rng, row["project_number"])
        spoiler.spoil(row, "project_number", "non_existent_project", mistyped)
    bad = bad_suppliers(company)
    for row in spoiler.pick(plan["bad_supplier"] if bad else 0):
        row["supplier_code"] = rng.choice(bad)
    for row in spoiler.pick(plan["missing"], lambda row: row["direct_cost_type"] == "invoice"):
        spoiler.spoil(row, "invoice_number", "missing", None)


def generate_direct_cost_lines(rng: random.Random, company: Company) -> TableData:
    spec = LineSpec(
        "direct_cost_lines", "direct_costs", "direct_cost_key", DIRECT_COST_LINE_COLUMNS, 2,
        ((1, 40.0), (2, 35.0), (3, 25.0)), {"M": 3.0, "S": 2.0, "L": 2.0},
        money_lines(200, 60_000), defect_share=0.005,
    )
    return generate_lines(rng, company, spec)
