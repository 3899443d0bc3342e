"""``procore-sync demo --cluster``: the demo as several hosts run it, on this one machine.

Two companies, profiles ``north`` and ``south``, each with its own sample ERP and its own local
Procore sandbox, are synced by a cluster (``app/cluster.py``): a PostgreSQL holding the Prefect
server's database and the shared sync state (a schema per company), the Prefect server on it,
the process work pool ``procore-sync`` with every company's deployments, and two worker hosts,
each in a folder of its own. Both companies' sync-alls start at once as deployment runs and the
workers take them; then the field works in each company's Procore and a second sync-all per
company brings that into its ERP, as in the single-machine demo. Without ``--once`` the workers
stay up and run the deployments' schedules until Ctrl-C.

Everything lives under ``<home>/cluster`` and starts from scratch each time: the cluster's
PostgreSQL is a throwaway one (``app/local_postgres.py``), gone with the demo.
"""

from __future__ import annotations

import faulthandler
import shutil
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from app.cluster import Cluster, ClusterCompany
from app.demo import DEMO_QUOTA, DemoOptions, work_in_the_field
from demo import sample_erp
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

if TYPE_CHECKING:
    from tasks.report import RunSummary

# profile: (company id, the sample ERP's seed): two companies that differ.
COMPANIES = {"north": (1, 42), "south": (2, 43)}
WORKERS = 2
# A run of either company that has not ended by then has gone wrong: the demo stops and says so.
RUN_TIMEOUT_S = 3600.0


def run_cluster_demo(options: DemoOptions, say: Callable[[str], None],
                     show: Callable[[list["RunSummary"], str], None]) -> int:
    """Run the cluster demo; returns the process exit code (1 when a sync run failed)."""
    home = Settings().home.resolve() / "cluster"
    shutil.rmtree(home, ignore_errors=True)  # the cluster's state went with its PostgreSQL
    with ExitStack() as stack:
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # where a demo that hangs is
        stack.callback(faulthandler.unregister, signal.SIGUSR1)
        companies = []
        for profile, (company_id, seed) in COMPANIES.items():
            folder = home / profile
            say(f"{profile}: generating its sample ERP (scale {options.scale:g})...")
            sample_erp.generate(folder / "erp", scale=options.scale, seed=seed)
            config = SandboxConfig(company_id=company_id, hourly_limit=int(DEMO_QUOTA["PROCORE_SYNC_QUOTA_PER_HOUR"]),
                                   spike_limit=int(DEMO_QUOTA["PROCORE_SYNC_QUOTA_SPIKE_PER_10S"]))
            companies.append(ClusterCompany(profile, company_id, folder, stack.enter_context(start_in_thread(config))))
        profiles = home / "profiles.toml"
        profiles.write_text("\n".join(company.table() for company in companies))
        say(f"Starting the cluster: PostgreSQL, the Prefect server on it, {WORKERS} worker hosts...")
        # One run at a time per host, so the two companies' sync-alls go to the two hosts.
        cluster = stack.enter_context(Cluster(home, profiles, workers=WORKERS, env=dict(DEMO_QUOTA), poll_s=2,
                                              worker_limit=1, port=options.prefect_port))
        assert cluster.server is not None
        ui = cluster.server.ui_url
        say(f"Prefect UI: {ui}   state: PostgreSQL {cluster.state_url}")
        for company in companies:
            say(f"{company.profile}: company {company.company_id}, Procore sandbox {company.sandbox.url}, "
                f"ERP {company.erp}")
        say("Hosts: " + ", ".join(f"{host.folder} (log: {host.log.name})" for host in cluster.hosts))
        settings = {s.profile: s for s in cluster.profiles()}
        failed = not sync_all_across(cluster, companies, settings, say, show)
        for company in companies:
            say(f"{company.profile}: field activity in Procore: "
                f"{work_in_the_field(settings[company.profile]).describe()}")
        failed |= not sync_all_across(cluster, companies, settings, say, show)
        if not options.once:
            say(f"The workers run the deployments on their schedules; open {ui} (Ctrl-C to stop).")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        say("Stopping the cluster: the workers, the Prefect server, PostgreSQL.")
        return 1 if failed else 0


def sync_all_across(cluster: Cluster, companies: list[ClusterCompany], settings: dict[str, Settings],
                    say: Callable[[str], None], show: Callable[[list["RunSummary"], str], None]) -> bool:
    """Every company's sync-all deployment run, started at once and taken by whichever host is
    free; each company's entity runs shown once all ended. True when every run completed."""
    runs = cluster.start_sync_alls(c.profile for c in companies)
    hosts: dict[str, int] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while (states := cluster.final_states(runs.values())) is None:
        for profile, run_id in runs.items():
            if profile not in hosts and (host := cluster.host_of(str(run_id))) is not None:
                hosts[profile] = host
                say(f"{profile}: sync-all running on host-{host}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sync-alls did not end within {RUN_TIMEOUT_S:.0f} s; see {cluster.folder}")
        time.sleep(1)
    assert cluster.server is not None
    for company in companies:
        show(last_runs(settings[company.profile]), cluster.server.ui_url)
        say(f"{company.profile}: sync-all {states[runs[company.profile]].lower()}")
    return all(state == "COMPLETED" for state in states.values())


def last_runs(settings: Settings) -> list["RunSummary"]:
    """The company's last run of every entity sync-all runs, as the shared state recorded it."""
    from connectors.state import StateStore
    from flows import ENTITY_FLOWS, enabled
    from tasks.prefect_run import summary_of_row

    store = StateStore.open(settings)
    found = [store.runs(name, limit=1) for name in ENTITY_FLOWS if enabled(name, settings)]
    return [summary_of_row(runs[0]).model_copy(update={"entity": f"{settings.profile}/{runs[0].entity}"})
            for runs in found if runs]

