"""Projects, the company's cost code and cost type lists, and sub jobs.

A few projects are bad (blank name, invalid country or state, a duplicated number). Everything
under a bad project is blocked, so those are small jobs: their blocked descendants stay a small
share of each table.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from decimal import Decimal

from demo.sample_erp.base import (
    Company,
    Row,
    TableData,
    columns,
    day_between,
    defect_counts,
    place,
    postal_code,
    stamp,
)
from demo.sample_erp.suppliers import blank_name, duplicate, invalid_country, invalid_state
from demo.sample_erp.words import (
    BUILDINGS,
    COST_CODES,
    COST_TYPES,
    PLACES,
    PROJECT_STREETS,
    SMALL_BUILDINGS,
    STREET_TYPES,
    SUB_JOB_SETS,
)

PROJECT_COLUMNS = columns(
    "project_number VARCHAR, name VARCHAR, address VARCHAR, city VARCHAR, state_code VARCHAR, "
    "country_code VARCHAR, zip VARCHAR, start_date DATE, completion_date DATE, "
    "total_value DECIMAL(18,2), active BOOLEAN, updated_at TIMESTAMPTZ"
)
STANDARD_COST_CODE_COLUMNS = columns("cost_code VARCHAR, name VARCHAR, updated_at TIMESTAMPTZ")
COST_TYPE_COLUMNS = columns(
    "cost_type VARCHAR, name VARCHAR, base_type VARCHAR, updated_at TIMESTAMPTZ"
)
SUB_JOB_COLUMNS = columns(
    "sub_job_key VARCHAR, project_number VARCHAR, sub_job_code VARCHAR, name VARCHAR, "
    "updated_at TIMESTAMPTZ"
)
# In this order of precedence when a small sample has room for only some (a quarter of rows).
PROJECT_DEFECTS = {"blank": 0.01, "invalid_country": 0.01, "duplicate": 0.01, "invalid_state": 0.01}
SUB_JOB_SHARE = 0.2


def generate_projects(rng: random.Random, company: Company) -> TableData:
    count = company.count(20)
    plan = defect_counts(count, PROJECT_DEFECTS)
    spoiled = rng.sample(range(count), sum(plan.values()))
    names: set[str] = set()
    small = set(spoiled)
    rows = [_project(rng, f"P-{1001 + n}", company, n in small, names) for n in range(count)]
    data = TableData("projects", "project_number", PROJECT_COLUMNS, rows)
    problems = [problem for problem, times in plan.items() for _ in range(times)]
    spare = iter(range(1001 + count, 2002 + count))
    for index, problem in zip(spoiled, problems):
        _spoil_project(rng, data, rows[index], problem, company, names, f"P-{next(spare)}")
    return data


def _project(
    rng: random.Random, number: str, company: Company, small: bool, names: set[str]
) -> Row:
    country, city, state, _, start = place(rng, canada_share=0.2)
    today = company.now.date()
    begins = day_between(rng, today - timedelta(days=3 * 365), today + timedelta(days=90))
    ends = begins + timedelta(days=rng.randint(240, 1100))
    return {
        "project_number": number,
        "name": _project_name(rng, small, names),
        "address": f"{rng.randint(100, 9999)} {rng.choice(PROJECT_STREETS)} "
        f"{rng.choice(STREET_TYPES)}",
        "city": city,
        "state_code": state,
        "country_code": country,
        "zip": postal_code(rng, country, start),
        "start_date": begins,
        "completion_date": ends,
        "total_value": _project_value(rng, small),
        "active": ends >= today - timedelta(days=60),
        "updated_at": stamp(rng, company.now),
    }


def _project_name(rng: random.Random, small: bool, taken: set[str]) -> str:
    name = f"{rng.choice(PLACES)} {rng.choice(SMALL_BUILDINGS if small else BUILDINGS)}"
    phase = 1
    while (candidate := name if phase == 1 else f"{name} Phase {phase}") in taken:
        phase += 1
    taken.add(candidate)
    return candidate


def _project_value(rng: random.Random, small: bool) -> Decimal:
    """Small jobs: 0.8 to 2.5 million; others 8 to 90 million, most near the low end."""
    if small:
        return Decimal(rng.randrange(800, 2500) * 1000).quantize(Decimal("0.01"))
    thousands = math.exp(rng.uniform(math.log(8_000), math.log(90_000)))
    return Decimal(round(thousands) * 1000).quantize(Decimal("0.01"))


def _spoil_project(
    rng: random.Random, data: TableData, row: Row, problem: str, company: Company,
    names: set[str], spare_number: str,
) -> None:
    key = row["project_number"]
    if problem == "duplicate":  # an old job whose number was reused: a second row, same key
        copy = _project(rng, key, company, True, names)
        data.rows.append(copy)
        entry = duplicate(row, copy, "project_number")
        data.bad.append(entry | {"fix": {"project_number": spare_number}})
        return
    spoil = {"blank": blank_name, "invalid_country": invalid_country, "invalid_state": invalid_state}
    data.bad.append({"key": key, **spoil[problem](rng, row)})


# --- the company's lists ----------------------------------------------------------------------


def generate_standard_cost_codes(rng: random.Random, company: Company) -> TableData:
    rows = [
        {"cost_code": code, "name": name, "updated_at": stamp(rng, company.now)}
        for code, name in COST_CODES
    ]
    return TableData("standard_cost_codes", "cost_code", STANDARD_COST_CODE_COLUMNS, rows)


def generate_cost_types(rng: random.Random, company: Company) -> TableData:
    rows = [
        {"cost_type": code, "name": name, "base_type": base, "updated_at": stamp(rng, company.now)}
        for code, name, base in COST_TYPES
    ]
    return TableData("cost_types", "cost_type", COST_TYPE_COLUMNS, rows)


def generate_sub_jobs(rng: random.Random, company: Company) -> TableData:
    """About a fifth of the good projects are split into 2 or 3 sub jobs (at least one is)."""
    good = company.keys("projects")
    chosen = sorted(rng.sample(good, min(len(good), max(1, round(SUB_JOB_SHARE * len(good))))))
    rows = []
    for project in chosen:
        names = rng.choice(SUB_JOB_SETS)[: rng.randint(2, 3)]
        for n, name in enumerate(names, start=1):
            rows.append({
                "sub_job_key": f"{project}|{n:02d}",
                "project_number": project,
                "sub_job_code": f"{n:02d}",
                "name": name,
                "updated_at": stamp(rng, company.now),
            })
    return TableData("sub_jobs", "sub_job_key", SUB_JOB_COLUMNS, rows)
