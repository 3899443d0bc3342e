"""The job cost structure and the original budget: project cost codes, WBS codes, budget lines.

A WBS code is one (project, sub job or none, cost code, cost type) combination; every budget
line budgets exactly one WBS code and has its key. WBS codes are spread over the projects by
contract value (2,000 per scale), within what each project's cost codes and sub jobs allow.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from decimal import Decimal

from demo.sample_erp.base import (
    UNIT,
    Company,
    Ref,
    Row,
    Spoiler,
    TableData,
    allocate,
    columns,
    defect_counts,
    money,
    split,
    stamp,
    wbs_key,
)
from demo.sample_erp.words import (
    COST_CODES,
    COST_TYPE_WEIGHTS,
    COST_TYPES,
    GENERAL_REQUIREMENTS,
    UNITS,
)

PROJECT_COST_CODE_COLUMNS = columns(
    "project_cost_code_key VARCHAR, project_number VARCHAR, cost_code VARCHAR, "
    "updated_at TIMESTAMPTZ"
)
WBS_COLUMNS = columns(
    "wbs_key VARCHAR, project_number VARCHAR, sub_job_code VARCHAR, cost_code VARCHAR, "
    "cost_type VARCHAR, description VARCHAR, updated_at TIMESTAMPTZ"
)
BUDGET_COLUMNS = columns(
    "budget_line_key VARCHAR, project_number VARCHAR, sub_job_code VARCHAR, cost_code VARCHAR, "
    "cost_type VARCHAR, amount DECIMAL(18,2), quantity DECIMAL(18,4), unit_cost DECIMAL(18,4), "
    "uom VARCHAR, updated_at TIMESTAMPTZ"
)
MAX_OTHER_CODES, SMALL_JOB_CODES = 25, (3, 6)  # besides 01-001, per good / per bad project
MIN_WBS_PER_PROJECT = 5
WBS_DEFECTS = {"non_existent_cost_type": 0.004, "non_existent_cost_code": 0.004}
BAD_COST_TYPES = ("X", "LAB", "SUB", "MAT", "9")
CODE_NAMES = dict(COST_CODES)
TYPE_NAMES = {code: name for code, name, _ in COST_TYPES}

PCC_REFS: list[Ref] = [
    ("project_number", "projects", lambda row: row["project_number"]),
    ("cost_code", "standard_cost_codes", lambda row: row["cost_code"]),
]
WBS_REFS: list[Ref] = [
    ("project_number", "projects", lambda row: row["project_number"]),
    ("sub_job_code", "sub_jobs", lambda row: _sub_job_key(row)),
    ("cost_code", "project_cost_codes", lambda row: f"{row['project_number']}|{row['cost_code']}"),
    ("cost_type", "cost_types", lambda row: row["cost_type"]),
]
BUDGET_REFS: list[Ref] = [
    ("project_number", "projects", lambda row: row["project_number"]),
    ("cost_code", "wbs_codes", lambda row: row["budget_line_key"]),
]


def _sub_job_key(row: Row) -> str | None:
    return f"{row['project_number']}|{row['sub_job_code']}" if row["sub_job_code"] else None


def wbs_counts(company: Company) -> dict[str, int]:
    """How many (good) WBS codes each project gets: by contract value, within its room."""
    projects = company.intended("projects")
    sub_jobs = _sub_jobs(company)
    good = set(company.keys("projects"))
    caps = {
        key: len(COST_TYPES) * (1 + (MAX_OTHER_CODES if key in good else SMALL_JOB_CODES[0]))
        * max(1, len(sub_jobs.get(key, ())))
        for key in projects
    }
    weights = {key: float(row["total_value"]) for key, row in projects.items()}
    total = company.count(2000) - sum(defect_counts(company.count(2000), WBS_DEFECTS).values())
    return allocate(total, weights, caps, MIN_WBS_PER_PROJECT)


def _sub_jobs(company: Company) -> dict[str, list[Row]]:
    found: dict[str, list[Row]] = defaultdict(list)
    for row in company.tables["sub_jobs"].rows:
        found[row["project_number"]].append(row)
    return found


# --- project cost codes -----------------------------------------------------------------------


def generate_project_cost_codes(rng: random.Random, company: Company) -> TableData:
    counts, sub_jobs = wbs_counts(company), _sub_jobs(company)
    good = set(company.keys("projects"))
    others = [code for code, _ in COST_CODES if code != GENERAL_REQUIREMENTS[0]]
    rows = []
    for project, wbs in counts.items():
        if project in good:
            needed = math.ceil(wbs / (len(COST_TYPES) * max(1, len(sub_jobs[project])))) - 1
            extra = min(len(others), max(rng.randint(10, MAX_OTHER_CODES), needed))
        else:
            extra = rng.randint(*SMALL_JOB_CODES)
        for code in [GENERAL_REQUIREMENTS[0], *sorted(rng.sample(others, extra))]:
            rows.append(_pcc(rng, company, project, code))
    data = TableData("project_cost_codes", "project_cost_code_key", PROJECT_COST_CODE_COLUMNS, rows)
    _add_unknown_codes(rng, company, data)
    company.block(data, PCC_REFS)
    return data


def _pcc(rng: random.Random, company: Company, project: str, code: str) -> Row:
    return {
        "project_cost_code_key": f"{project}|{code}",
        "project_number": project,
        "cost_code": code,
        "updated_at": stamp(rng, company.now),
    }


def _add_unknown_codes(rng: random.Random, company: Company, data: TableData) -> None:
    """Codes typed into a project that the company's standard list does not have."""
    good = company.keys("projects")
    plan = defect_counts(len(data.rows), {"non_existent_cost_code": 0.005})
    for _ in range(plan["non_existent_cost_code"]):
        project = rng.choice(good)
        code = unknown_code(rng, {row["project_cost_code_key"] for row in data.rows}, project)
        data.rows.append(_pcc(rng, company, project, code))
        data.bad.append({
            "key": f"{project}|{code}", "field": "cost_code",
            "problem": "non_existent_cost_code", "value": code,
        })


def unknown_code(rng: random.Random, taken: set[str], project: str) -> str:
    while True:
        division = rng.choice(COST_CODES)[0][:2]
        code = f"{division}-{rng.randrange(110, 990, 10)}"
        if code not in CODE_NAMES and f"{project}|{code}" not in taken:
            return code


# --- WBS codes --------------------------------------------------------------------------------


def project_codes(company: Company) -> dict[str, list[str]]:
    """Each project's cost codes that exist in the standard list (the usable ones)."""
    found: dict[str, list[str]] = defaultdict(list)
    for row in company.tables["project_cost_codes"].rows:
        if row["cost_code"] in CODE_NAMES:
            found[row["project_number"]].append(row["cost_code"])
    return found


def generate_wbs_codes(rng: random.Random, company: Company) -> TableData:
    codes, sub_jobs = project_codes(company), _sub_jobs(company)
    rows = []
    for project, count in wbs_counts(company).items():
        jobs = [(row["sub_job_code"], row["name"]) for row in sub_jobs[project]] or [(None, None)]
        combos = [(job, code, kind) for job in jobs for code in codes[project] for kind in TYPE_NAMES]
        chosen = rng.sample(combos, min(count, len(combos)))
        chosen.sort(key=lambda combo: (combo[0][0] or "", combo[1], combo[2]))
        rows.extend(_wbs(rng, company, project, *combo) for combo in chosen)
    data = TableData("wbs_codes", "wbs_key", WBS_COLUMNS, rows)
    _add_bad_wbs(rng, company, data, codes)
    company.block(data, WBS_REFS)
    return data


def _wbs(
    rng: random.Random, company: Company, project: str, job: tuple[str | None, str | None],
    code: str, kind: str,
) -> Row:
    described = f"{CODE_NAMES.get(code, code)} - {TYPE_NAMES.get(kind, kind)}"
    return {
        "wbs_key": wbs_key(project, job[0], code, kind),
        "project_number": project,
        "sub_job_code": job[0],
        "cost_code": code,
        "cost_type": kind,
        "description": f"{job[1]} - {described}" if job[1] else described,
        "updated_at": stamp(rng, company.now),
    }


def _add_bad_wbs(
    rng: random.Random, company: Company, data: TableData, codes: dict[str, list[str]]
) -> None:
    """WBS codes with a cost type the company does not have, or a cost code the project lacks."""
    good = company.keys("projects")
    plan = defect_counts(company.count(2000), WBS_DEFECTS)
    taken = {row["wbs_key"] for row in data.rows}
    for problem, times in plan.items():
        for _ in range(times):
            project = rng.choice(good)
            while True:
                if problem == "non_existent_cost_type":
                    code, kind = rng.choice(codes[project]), rng.choice(BAD_COST_TYPES)
                else:
                    code = rng.choice([c for c in CODE_NAMES if c not in codes[project]])
                    kind = rng.choice(COST_TYPES)[0]
                if wbs_key(project, None, code, kind) not in taken:
                    break
            row = _wbs(rng, company, project, (None, None), code, kind)
            taken.add(row["wbs_key"])
            data.rows.append(row)
            field = "cost_type" if problem == "non_existent_cost_type" else "cost_code"
            data.bad.append(
                {"key": row["wbs_key"], "field": field, "problem": problem, "value": row[field]}
            )


# --- budget lines -----------------------------------------------------------------------------

BUDGET_DEFECTS = {"missing": 0.004, "non_existent_cost_code": 0.003}


def generate_budget_lines(rng: random.Random, company: Company) -> TableData:
    by_project: dict[str, list[Row]] = defaultdict(list)
    for wbs in company.tables["wbs_codes"].rows:
        by_project[wbs["project_number"]].append(wbs)
    projects = company.intended("projects")
    rows = []
    for project, codes in by_project.items():
        budget = money(float(projects[project]["total_value"]) * rng.uniform(0.88, 0.95))
        weights = [COST_TYPE_WEIGHTS.get(w["cost_type"], 1.0) * rng.uniform(0.3, 1.7) for w in codes]
        amounts = split(budget, weights)
        rows.extend(_budget_line(rng, company, w, amount) for w, amount in zip(codes, amounts))
    data = TableData("budget_lines", "budget_line_key", BUDGET_COLUMNS, rows)
    _spoil_budget(rng, company, data)
    company.block(data, BUDGET_REFS)
    return data


def _budget_line(rng: random.Random, company: Company, wbs: Row, amount: Decimal) -> Row:
    row = {
        "budget_line_key": wbs["wbs_key"],
        "project_number": wbs["project_number"],
        "sub_job_code": wbs["sub_job_code"],
        "cost_code": wbs["cost_code"],
        "cost_type": wbs["cost_type"],
        "amount": amount,
        "quantity": None,
        "unit_cost": None,
        "uom": None,
        "updated_at": stamp(rng, company.now),
    }
    if wbs["cost_type"] in UNITS and rng.random() < 0.45:
        add_units(rng, row, wbs["cost_type"])
    return row


def add_units(rng: random.Random, row: Row, cost_type: str) -> None:
    """Give a line a quantity × unit cost that makes (close to) its amount."""
    uom, low, high, _, _ = rng.choice(UNITS[cost_type])
    unit_cost = Decimal(rng.randint(low, high)).quantize(UNIT)
    quantity = (row["amount"] / unit_cost).quantize(Decimal("0.01"))
    if quantity > 0:
        row.update(quantity=quantity.quantize(UNIT), unit_cost=unit_cost, uom=uom)
        row["amount"] = money(quantity * unit_cost)


def _spoil_budget(rng: random.Random, company: Company, data: TableData) -> None:
    plan = defect_counts(len(data.rows), BUDGET_DEFECTS)
    spoiler = Spoiler(rng, data, lambda row: company.clean(row, BUDGET_REFS))
    for row in spoiler.pick(plan["missing"], lambda row: row["quantity"] is None):
        spoiler.spoil(row, "amount", "missing", None)
    used, good = codes_used(company), company.keys("projects")
    taken = {row["budget_line_key"] for row in data.rows}
    for _ in range(plan["non_existent_cost_code"]):
        while True:
            project = rng.choice(good)
            code = rng.choice([c for c in CODE_NAMES if c not in used[project]])
            kind = rng.choice(COST_TYPES)[0]
            if (key := wbs_key(project, None, code, kind)) not in taken:
                break
        taken.add(key)
        wbs = {"wbs_key": key, "project_number": project, "sub_job_code": None,
               "cost_code": code, "cost_type": kind}
        data.rows.append(_budget_line(rng, company, wbs, money(rng.uniform(2_000, 80_000))))
        data.bad.append({"key": wbs["wbs_key"], "field": "cost_code",
                         "problem": "non_existent_cost_code", "value": code})


def codes_used(company: Company) -> dict[str, set[str]]:
    """Per project, every cost code its project cost codes or WBS codes name (good or not)."""
    used: dict[str, set[str]] = defaultdict(set)
    for table in ("project_cost_codes", "wbs_codes"):
        for row in company.tables[table].rows:
            used[row["project_number"]].add(row["cost_code"])
    return used

