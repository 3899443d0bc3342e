"""Benchmark: what the Procore → ERP entities cost in Procore calls, per project and per run.

Generates the sample ERP at a scale (1 = about 20 projects), syncs it into the sandbox, then, as
the field would, creates through Procore's API in every project: commitment change orders on
its subcontracts and purchase orders (3 lines each), prime change orders (2 lines) and budget
changes (a transfer, 2 lines). Then it runs the four steps an operator cares about and prints,
per entity and step: records written to the ERP, API calls, calls per project, and the share of
an hour of Procore's default quota (3,600 calls) the step takes:

- ``first``: the first import of everything the field created;
- ``idle``: a run with nothing new (the price of running on a schedule);
- ``edit``: a run after the field edited a tenth of the change orders.

    .venv/bin/python bench/inbound.py [--scale 1] [--per-project 20] [--json]
"""

from __future__ import annotations

import random
import time

from _harness import QUOTA_PER_HOUR, bench_environment, company_parser, print_rows, sample_company

from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows import ENTITY_FLOWS, enabled
from flows.sync_all import sync_all
from app.runner import run_entities
from procore_sync.settings import Settings
from tasks.inbound import known_projects
from tasks.spec import SyncOptions

COLUMNS = ("step", "entity", "erp_writes", "api_calls", "calls_per_project", "quota_share_pct", "duration_s")


def contracts(client: ProcoreClient, project_id: int, kind: str) -> list[dict]:
    return [c for c in client.paginate(f"/rest/v1.0/{kind}", {"project_id": project_id}) if c.get("origin_id")]


def lines_of(client: ProcoreClient, project_id: int, kind: str, contract_id: int) -> list[dict]:
    return list(client.paginate(f"/rest/v1.0/{kind}/{contract_id}/line_items", {"project_id": project_id}))


def wbs_of(line: dict) -> int:
    return int(line["wbs_code"]["id"])  # contract lines show their WBS code nested


def change_order(client: ProcoreClient, company: int, project: int, collection: str, contract_id: int,
                 lines: list[dict], link: str, title: str, rng: random.Random) -> int:
    body = {"change_order": {"contract_id": contract_id, "title": title, "status": "draft"}}
    created = client.request("POST", f"/rest/v1.0/projects/{project}/{collection}", json=body).json()
    path = f"/rest/v2.0/companies/{company}/projects/{project}/{collection}/{created['id']}/line_items"
    for line in lines:
        item = {"wbs_code_id": str(wbs_of(line)), "amount": str(rng.randrange(100, 5000)),
                "description": title}
        if link == "commitment_line_item_id":
            item[link] = str(line["id"])
        client.request("POST", path, json=item)
    return int(created["id"])


def field_creates(settings: Settings, per_project: int, seed: int = 1) -> list[tuple[int, str, int]]:
    """Change orders and budget changes in every project; returns (project, collection, id)."""
    rng = random.Random(seed)
    made: list[tuple[int, str, int]] = []
    with ProcoreClient(settings) as client:
        company = settings.company_id
        for project in client.paginate("/rest/v1.1/projects", {"company_id": company}):
            pid = project["id"]
            commitments = [(kind, c) for kind in ("work_order_contracts", "purchase_order_contracts")
                           for c in contracts(client, pid, kind)]
            with_lines = [(c, lines_of(client, pid, kind, c["id"])[:3]) for kind, c in commitments]
            with_lines = [(c, lines) for c, lines in with_lines if lines]
            for n in range(per_project if with_lines else 0):
                contract, lines = with_lines[n % len(with_lines)]
                made.append((pid, "commitment_change_orders", change_order(
                    client, company, pid, "commitment_change_orders", contract["id"], lines,
                    "commitment_line_item_id", f"Bench CO {n}", rng)))
            primes = contracts(client, pid, "prime_contracts")
            prime_lines = lines_of(client, pid, "prime_contracts", primes[0]["id"])[:2] if primes else []
            for n in range(max(1, per_project // 4) if prime_lines else 0):
                made.append((pid, "prime_change_orders", change_order(
                    client, company, pid, "prime_change_orders", primes[0]["id"], prime_lines,
                    "prime_line_item_id", f"Bench PCO {n}", rng)))
            wbs = list(dict.fromkeys(wbs_of(line) for _, lines in with_lines for line in lines))[:2]
            for n in range(max(1, per_project // 4) if len(wbs) == 2 else 0):
                amount = rng.randrange(100, 5000)
                adjustments = [{"adjustment_number": 1, "wbs_code_id": wbs[0], "amount": -amount},
                               {"adjustment_number": 1, "wbs_code_id": wbs[1], "amount": amount}]
                body = {"status": "draft", "title": f"Bench transfer {n}", "adjustment_line_items": adjustments}
                answer = client.request("POST", f"/rest/v1.0/projects/{pid}/budget_changes", json=body).json()
                made.append((pid, "budget_changes", int(answer["data"]["id"])))
    return made


def field_edits(settings: Settings, made: list[tuple[int, str, int]], share: float = 0.1) -> int:
    edits = [m for m in made if m[1] == "commitment_change_orders"][:: max(1, round(1 / share))]
    with ProcoreClient(settings) as client:
        for project, collection, record_id in edits:
            body = {"change_order": {"title": f"Bench CO {record_id} (revised)"}}
            client.request("PATCH", f"/rest/v1.0/projects/{project}/{collection}/{record_id}", json=body)
    return len(edits)


def measure(step: str, settings: Settings, names: list[str], projects: int) -> list[dict]:
    rows = []
    for summary in run_entities(settings, names, SyncOptions()):
        rows.append({
            "step": step,
            "entity": summary.entity,
            "erp_writes": summary.erp_writes,
            "api_calls": summary.api_calls,
            "calls_per_project": round(summary.api_calls / max(projects, 1), 2),
            "quota_share_pct": round(100 * summary.api_calls / QUOTA_PER_HOUR, 2),
            "duration_s": summary.duration_s,
        })
    return rows


def main() -> None:
    parser = company_parser(__doc__)
    parser.add_argument("--per-project", type=int, default=20, help="commitment change orders per project")
    args = parser.parse_args()
    with sample_company(args.scale) as home, bench_environment(home / "erp" / "erp.duckdb", home / "state"):
        sync_all(options=SyncOptions())
        settings = Settings()
        names = [n for n, (spec, _) in ENTITY_FLOWS.items() if spec.inbound and enabled(n, settings)]
        made = field_creates(settings, args.per_project)
        projects = len(known_projects(StateStore.open(settings)))  # every one is read
        started = time.monotonic()
        rows = measure("first", settings, names, projects)
        rows += measure("idle", settings, names, projects)
        edited = field_edits(settings, made)
        rows += measure("edit", settings, names, projects)
        wall_s = time.monotonic() - started
    if not args.json:
        print(f"{len(made)} records made by the field; {projects} projects read; {edited} change orders edited")
    print_rows(rows, COLUMNS, args.json, width=17)
    if args.json:
        return
    for step in ("first", "idle", "edit"):
        calls = sum(r["api_calls"] for r in rows if r["step"] == step)
        print(f"{step}: {calls} API calls in all, {calls / max(projects, 1):.1f} per project, "
              f"{100 * calls / QUOTA_PER_HOUR:.1f}% of an hour of quota")
    print(f"wall time of the three steps: {wall_s:.1f} s")


if __name__ == "__main__":
    main()
