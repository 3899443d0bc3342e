"""Benchmark: what a sync-all that finds nothing changed costs: calls, local time, memory.

Generates the sample ERP at each scale (1 = about 20 projects and 12,500 ERP records; 8 = about
100,000), runs a first sync-all into the sandbox (quota off: it measures the engine), then a
second and a third with nothing changed, each in a child process of its own
(``_delta_child.py``), and prints per scale and run: Procore calls, the calls of the
Procore → ERP entities, sync-all's wall seconds, the child's CPU seconds in the sync-all (the
local work: the sandbox answers from this process), its own peak memory, and Prefect task runs per
entity run. ``--calls`` adds the calls per endpoint. ``--webhooks`` installs procore-sync's
Procore hook after the first sync-all (docs/webhooks.md): with the hook healthy, the second and
third sync-all leave the Procore → ERP entities to it until their daily sweep. ``--profile P``
writes each no-change run's cProfile stats, its threads' included, to ``P.<pid>`` (``pstats``).

    .venv/bin/python bench/delta.py [--scale 1 --scale 5 --scale 8] [--calls] [--webhooks] [--json]
                                    [--profile PREFIX]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# At scale 5 and more, the temporary Prefect server's SQLite is busy enough, on 2 shared cores,
# to answer "database is locked" as 503 past the client's 5 retries (measured: the first sync-all
# at scale 5 failed so twice); more patience on both sides, for the bench and its children.
os.environ.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")
os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "12")

from _harness import bench_environment, print_rows, sample_company  # noqa: E402

from flows.sync_all import sync_all  # noqa: E402
from tasks.spec import SyncOptions  # noqa: E402

CHILD = Path(__file__).with_name("_delta_child.py")
COLUMNS = ("scale", "run", "erp_records", "projects", "api_calls", "inbound_calls", "wall_s", "cpu_s",
           "peak_rss_mib", "task_runs_max")
INBOUND = ("commitment_change_orders", "prime_change_orders", "budget_changes", "budget_modifications")


def erp_records(home: Path) -> int:
    """Rows of every ERP table the sample wrote (the scale's size in records)."""
    expected = json.loads((home / "erp" / "expected.json").read_text())
    return sum(int(table["rows"]) for table in expected.values())


def child_sync_all(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, str(CHILD)], env=os.environ | env, capture_output=True, text=True,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"the sync-all child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def task_runs_per_entity(flow_run_ids: list[str]) -> int:
    """The most task runs any one entity's flow run made (O(batches), never O(records))."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    most = 0
    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:  # the API answers at most 200 a page
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                         sort=TaskRunSort.ID_DESC, limit=200)
            most = max(most, len(runs))
    return most


def install_webhooks() -> None:
    """procore-sync's hook in the sandbox, as `procore-sync webhooks install` makes it."""
    from connectors.procore import ProcoreClient
    from connectors.procore_webhooks import WebhooksApi
    from procore_sync.settings import Settings
    from flows import configured_resources
    from tasks.webhooks import install

    os.environ |= {"PROCORE_SYNC_WEBHOOK_SECRET": "delta-bench-secret",
                   "PROCORE_SYNC_WEBHOOK_URL": "http://127.0.0.1:9/procore/webhooks"}
    settings = Settings()
    with ProcoreClient(settings) as client:
        install(WebhooksApi(client, settings.company_id), settings, configured_resources(settings))


def measure(scale: float, show_calls: bool, webhooks: bool) -> list[dict]:
    from prefect.settings import PREFECT_API_URL

    rows = []
    with sample_company(scale) as home, bench_environment(home / "erp" / "erp.duckdb", home / "state"):
        records = erp_records(home)
        print(f"scale {scale}: first sync-all of {records} ERP records...", file=sys.stderr, flush=True)
        started = time.monotonic()
        first = sync_all(options=SyncOptions())
        print(f"  first: {sum(s.api_calls for s in first)} calls, {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
        if webhooks:
            install_webhooks()
        env = {k: v for k, v in os.environ.items() if k.startswith("PROCORE_SYNC_")}
        env |= {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "WARNING"}
        from connectors.state import StateStore
        from tasks.inbound import known_projects
        projects = len(known_projects(StateStore(home / "state" / "state.duckdb")))
        for run in ("second", "third"):
            result = child_sync_all(env)
            summaries = result["summaries"]
            rows.append({
                "scale": scale, "run": run, "erp_records": records, "projects": projects,
                "api_calls": sum(result["calls"].values()),
                "inbound_calls": sum(s["api_calls"] for s in summaries if s["entity"] in INBOUND),
                "wall_s": result["wall_s"], "cpu_s": result["cpu_s"], "peak_rss_mib": result["peak_rss_mib"],
                "task_runs_max": task_runs_per_entity([s["flow_run_id"] for s in summaries if s["flow_run_id"]]),
                "changed": sum(s["created"] + s["updated"] for s in summaries),
                "calls": result["calls"],
            })
            if show_calls:
                print(f"  {run}: calls per endpoint", file=sys.stderr)
                for call, n in sorted(result["calls"].items(), key=lambda item: -item[1]):
                    print(f"    {n:5}  {call}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append")
    parser.add_argument("--calls", action="store_true", help="print the calls per endpoint")
    parser.add_argument("--webhooks", action="store_true", help="procore-sync's hook installed and healthy")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="write each no-change run's cProfile stats to PREFIX.<pid> (read with pstats)")
    args = parser.parse_args()
    if args.profile:
        os.environ["DELTA_PROFILE"] = args.profile
    rows = [row for scale in args.scale or [1.0, 5.0, 8.0] for row in measure(scale, args.calls, args.webhooks)]
    print_rows(rows, COLUMNS, args.json, width=13)
    if not args.json:
        print("\nchanged records in the no-change runs (must be 0):", sum(r["changed"] for r in rows))


if __name__ == "__main__":
    main()
