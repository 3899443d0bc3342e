"""Benchmark: an original budget of 50,000 lines over 200 projects, in API calls.

Builds an ERP with 200 projects, 50 standard cost codes and 5 cost types (every project uses all
250 combinations as WBS codes and budgets each one), then runs the entities the budget needs,
parents first, into the sandbox, and prints the calls per entity. Target (issue 3): the budget
path, everything after the projects exist, takes at most 900 calls: per project one cost code
look-up, one cost code sync, one WBS bulk create and one budget sync.

    .venv/bin/python bench/budget_50k.py [--projects 200] [--codes 50]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from _harness import bench_environment

from app.runner import run_entities
from procore_sync.settings import Settings

COST_TYPES = [("L", "Labor", "other"), ("M", "Materials", "materials"), ("E", "Equipment", "equipment"),
              ("S", "Subcontract", "commitment"), ("O", "Other", "other")]
ENTITIES = ["projects", "standard_cost_codes", "cost_types", "sub_jobs", "project_cost_codes", "wbs_codes",
            "budget_lines"]
BUDGET_PATH = ENTITIES[1:]


def build_erp(path: Path, projects: int, codes: int) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with duckdb.connect(str(path)) as con:
        con.execute(f"""
            create table projects as select 'P-' || (1000 + i) as project_number, 'Bench project ' || i as name,
                'US' as country_code, 'CO' as state_code, true as active, ?::timestamptz as updated_at
            from range({projects}) t(i)""", [now])
        con.execute(f"""
            create table standard_cost_codes as select printf('%02d-%03d', 1 + i // 10, 100 + i) as cost_code,
                'Code ' || i as name, ?::timestamptz as updated_at from range({codes}) t(i)""", [now])
        con.execute("""
            create table cost_types (cost_type varchar, name varchar, base_type varchar, updated_at timestamptz);
            create table sub_jobs (sub_job_key varchar, project_number varchar, sub_job_code varchar, name varchar,
                updated_at timestamptz);
            create table project_cost_codes as select p.project_number || '|' || c.cost_code as project_cost_code_key,
                p.project_number, c.cost_code, p.updated_at from projects p, standard_cost_codes c;
        """)
        con.executemany("insert into cost_types values (?, ?, ?, ?)", [(*t, now) for t in COST_TYPES])
        con.execute("""
            create table wbs_codes as select pc.project_number || '|' || pc.cost_code || '|' || t.cost_type as wbs_key,
                pc.project_number, null::varchar as sub_job_code, pc.cost_code, t.cost_type,
                null::varchar as description, pc.updated_at
            from project_cost_codes pc, cost_types t;
            create table budget_lines as select wbs_key as budget_line_key, project_number, sub_job_code, cost_code,
                cost_type, (1000 + (hash(wbs_key) % 90000))::decimal(18,2) as amount, null::decimal(18,4) as quantity,
                null::decimal(18,4) as unit_cost, null::varchar as uom, updated_at
            from wbs_codes;
        """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--codes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        erp = Path(tmp) / "erp.duckdb"
        build_erp(erp, args.projects, args.codes)
        with bench_environment(erp, Path(tmp) / "state"):
            summaries = run_entities(Settings(), ENTITIES)
    print(f"{'entity':>20} {'created':>8} {'failed':>7} {'api_calls':>9} {'write_calls':>11} {'duration_s':>10}")
    for s in summaries:
        print(f"{s.entity:>20} {s.created:>8} {s.failed:>7} {s.api_calls:>9} {s.write_calls:>11} {s.duration_s:>10}")
    lines = next(s for s in summaries if s.entity == "budget_lines")
    path_calls = sum(s.api_calls for s in summaries if s.entity in BUDGET_PATH)
    verdict = "met" if path_calls <= 900 and lines.created == args.projects * args.codes * 5 else "NOT met"
    print(f"\n{lines.created} budget lines over {args.projects} projects: {path_calls} API calls on the budget path "
          f"(cost codes, cost types, sub jobs, WBS codes, budget lines; projects excluded); "
          f"target at most 900: {verdict}")


if __name__ == "__main__":
    main()
