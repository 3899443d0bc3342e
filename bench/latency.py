"""Benchmark: from a change order edited in Procore to its row in the ERP, with webhooks and with
polling alone.

The sample company (``--scale``, 0.2 by default) is synced once, the field creates ``--changes``
commitment change orders (one poll brings them into the ERP), then procore-sync's hook is
installed, the receiver (`procore-sync webhooks serve`'s app and dispatcher) runs in this process
and the deployments are served by a real serve process, and the field edits each change order
once, at uniformly random moments over ``--spread-s`` seconds. Each edit's latency is its row's
``synced_at`` in the ERP table minus the moment the edit was answered; Procore calls per change
are the calls of every run the webhooks started, from the state store, over the changes.

Polling alone is computed, not waited for (its schedule runs every three hours): the same edits
at uniformly random moments of a working week wait for the next tick of sync-all's default cron
and then for a sync-all (its duration measured here on this company); its calls per change are a
week's polls of the two change order entities (measured on a poll that finds nothing) over the
changes. Both print p50 and p95.

    .venv/bin/python bench/latency.py [--scale 0.2] [--changes 100] [--spread-s 200] [--seed 1] [--json]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import bench_environment, company_parser, print_rows, sample_company

import requests
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.server.schemas.schedules import CronSchedule

from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.procore_webhooks import WebhooksApi
from connectors.state import StateStore
from flows import ENTITY_FLOWS
from flows.change_orders import COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS
from flows.sync_all import sync_all
from app.receiver import PATH, Dispatcher, receiver_app
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import run_in_thread
from flows import configured_resources
from tasks.webhooks import install

FIELD = {"grant_type": "client_credentials", "client_id": "sandbox-field", "client_secret": "sandbox-field-secret"}
SECRET = "latency-bench-secret-1234"
INBOUND = (COMMITMENT_CHANGE_ORDERS.name, PRIME_CHANGE_ORDERS.name)
SERVE = ("from app.runner import serve_forever; from procore_sync.settings import Settings; "
         "serve_forever(Settings())")
COLUMNS = ("path", "changes", "p50_s", "p95_s", "max_s", "calls_per_change")


class Field:
    """A person in Procore's web UI (the sandbox's field client: no application)."""

    def __init__(self, url: str) -> None:
        self.url, self.session = url, requests.Session()
        token = self.session.post(f"{url}/oauth/token", data=FIELD, timeout=10).json()["access_token"]
        self.session.headers.update({"Authorization": f"Bearer {token}", "Procore-Company-Id": "1"})

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, self.url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()


def create_change_orders(field: Field, state: StateStore, count: int) -> list[tuple[int, int]]:
    """``count`` approved commitment change orders spread over the synced subcontracts:
    (project id, change order id) each."""
    contracts = [(s.procore_id, key) for key, s in state.record_states("subcontracts").items() if s.procore_id]
    projects = {key: s.procore_id for key, s in state.record_states("projects").items() if s.procore_id}
    by_project = []
    for project_id in projects.values():
        listed = field.call("GET", "/rest/v1.0/work_order_contracts", params={"project_id": project_id})
        by_project += [(project_id, c["id"]) for c in listed if c["id"] in {cid for cid, _ in contracts}]
    made = []
    for n in range(count):
        project_id, contract_id = by_project[n % len(by_project)]
        body = {"change_order": {"contract_id": contract_id, "title": f"CO {n}", "status": "approved"}}
        answer = field.call("POST", f"/rest/v1.0/projects/{project_id}/commitment_change_orders", json=body)
        made.append((project_id, int(answer["id"])))
    return made


def erp_titles(settings: Settings) -> dict[int, tuple[str, datetime]]:
    rows = ErpSink.open(settings).rows(COMMITMENT_CHANGE_ORDERS.header)
    return {int(row["procore_id"]): (row["title"], row["synced_at"]) for row in rows}


def run_calls(state: StateStore, since: datetime) -> tuple[int, int]:
    """Calls and runs of the change order entities' runs started since ``since``."""
    runs = [r for entity in INBOUND for r in state.runs(entity, limit=10_000) if r.started_at >= since]
    return sum(r.api_calls for r in runs), len(runs)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def row(path: str, latencies: list[float], calls: float) -> dict[str, Any]:
    return {"path": path, "changes": len(latencies), "p50_s": round(statistics.median(latencies), 2),
            "p95_s": percentile(latencies, 0.95), "max_s": round(max(latencies), 2),
            "calls_per_change": round(calls, 2)}


def polling_latencies(cron: str, timezone: str, changes: int, sync_s: float, seed: int) -> list[float]:
    """Edits at random moments of a working week, each waiting for the next tick, then a sync-all."""
    rng = random.Random(seed)
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    latencies = []
    for _ in range(changes):
        edited = monday + timedelta(seconds=rng.uniform(0, 5 * 86400))
        tick = next_tick(cron, timezone, edited)
        latencies.append((tick - edited).total_seconds() + sync_s)
    return latencies


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The schedule's next run after ``after``, as Prefect's scheduler computes it."""
    (tick,) = asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(n=1, start=after))
    return tick


def polls_per_week(cron: str, timezone: str) -> int:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    ticks = asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(n=500, start=start,
                                                                          end=start + timedelta(days=7)))
    return len(ticks)


def main() -> None:
    parser = company_parser(__doc__)
    parser.set_defaults(scale=0.2)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--spread-s", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with sample_company(args.scale) as home:
        config = SandboxConfig(spike_limit=1_000_000, hourly_limit=1_000_000, webhook_duplicate_rate=0.05)
        receiver_port = free_port()
        env = {"PROCORE_SYNC_WEBHOOK_SECRET": SECRET,
               "PROCORE_SYNC_WEBHOOK_URL": f"http://127.0.0.1:{receiver_port}{PATH}",
               "PROCORE_SYNC_WEBHOOK_APPLICATION_IDS": f'["{config.application_id}"]',
               "PROCORE_SYNC_WEBHOOK_SWEEP_S": "0"}
        with bench_environment(home / "erp" / "erp.duckdb", home, config=config, **env) as sandbox:
            settings = Settings()
            print("first sync-all of the sample company...", file=sys.stderr, flush=True)
            started = time.monotonic()
            sync_all()
            sync_s = time.monotonic() - started
            state = StateStore.open(settings)
            field = Field(sandbox.url)
            made = create_change_orders(field, state, args.changes)
            for name in INBOUND:
                ENTITY_FLOWS[name][1]()  # a poll: the change orders reach the ERP
            polled = datetime.now(UTC)
            for name in INBOUND:
                ENTITY_FLOWS[name][1]()  # a poll that finds nothing: what each tick costs them
            poll_calls, _ = run_calls(state, polled)

            print(f"{len(made)} change orders in the ERP; webhooks on, edits over {args.spread_s:g} s...",
                  file=sys.stderr, flush=True)
            latencies, calls = webhook_path(settings, field, made, args, state, receiver_port)
    weekly = polls_per_week(settings.schedule_cron, settings.schedule_timezone)
    week_calls = weekly * poll_calls
    rows = [row("webhooks", latencies, calls / len(latencies)),
            row("polling alone", polling_latencies(settings.schedule_cron, settings.schedule_timezone,
                                                   args.changes, sync_s, args.seed), week_calls / args.changes)]
    print_rows(rows, COLUMNS, args.json)
    if not args.json:
        print(f"polling: sync-all at every tick of {settings.schedule_cron!r} ({weekly} a week), {sync_s:.1f} s "
              f"each here, {poll_calls} calls to poll the change order entities; {args.changes} edits over a week")


def webhook_path(settings: Settings, field: Field, made: list[tuple[int, int]], args: Any,
                 state: StateStore, port: int) -> tuple[list[float], int]:
    """Edit each change order once at a random moment; wait for every edit in the ERP."""
    dispatcher, stop = Dispatcher(settings, state), threading.Event()
    server, thread, _ = run_in_thread(receiver_app(settings, state, dispatcher.wake), "webhook-receiver",
                                      port=port)
    threading.Thread(target=dispatcher.run, args=(stop,), daemon=True).start()
    serving = subprocess.Popen([sys.executable, "-c", SERVE], env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with ProcoreClient(settings) as client:
            install(WebhooksApi(client, settings.company_id), settings, configured_resources(settings))
        wait_for_deployment(f"{COMMITMENT_CHANGE_ORDERS.name}/{COMMITMENT_CHANGE_ORDERS.name}")
        since = datetime.now(UTC)
        rng = random.Random(args.seed)
        moments = sorted(rng.uniform(0, args.spread_s) for _ in made)
        order = rng.sample(made, len(made))
        edited: dict[int, tuple[str, float]] = {}
        start = time.time()
        for moment, (project_id, change_order_id) in zip(moments, order):
            time.sleep(max(0.0, start + moment - time.time()))
            title = f"edited at {moment:.1f}"
            field.call("PATCH", f"/rest/v1.0/projects/{project_id}/commitment_change_orders/{change_order_id}",
                       json={"change_order": {"title": title}})
            edited[change_order_id] = (title, time.time())
        deadline = time.time() + 900
        while True:
            rows = erp_titles(settings)
            if all(rows.get(i, ("",))[0] == title for i, (title, _) in edited.items()) or time.time() > deadline:
                break
            time.sleep(2)
        latencies = [rows[i][1].timestamp() - at for i, (title, at) in edited.items() if rows.get(i, ("",))[0] == title]
        missing = len(edited) - len(latencies)
        if missing:
            print(f"{missing} edits never reached the ERP within 900 s", file=sys.stderr)
        time.sleep(5)  # the last runs record their calls
        calls, runs = run_calls(state, since)
        print(f"webhooks started {runs} runs", file=sys.stderr)
        return latencies, calls
    finally:
        stop.set()
        dispatcher.wake()
        serving.terminate()
        serving.wait(timeout=30)
        server.should_exit = True
        thread.join(timeout=10)


def wait_for_deployment(name: str, timeout_s: float = 120) -> None:
    """Until the serve process has registered ``name``."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
