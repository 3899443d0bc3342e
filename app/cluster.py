"""A cluster on one machine: PostgreSQL, a Prefect server on it, a work pool and N worker "hosts".

What several hosts run, set up as an operator would (docs/deployments.md) and gone at the end:

- a throwaway PostgreSQL cluster (``app/local_postgres.py``) holding the Prefect server's
  database (``prefect``) and the shared sync state (``state``, one schema per profile);
- a Prefect server on it with all its services: the triggers run the automation that marks a
  dead host's runs Crashed (``deployments/crash_detection.py``), the repossessor frees the run
  locks a dead host held (``connectors/run_lock.py``);
- the process work pool ``procore-sync`` and every profile's deployments on it, with the
  automations: ``procore-sync deployments --apply`` (``deployments/work_pool.py``);
- workers, ``prefect worker start --pool procore-sync``, each a "host": a folder of its own
  (working folder, PREFECT_HOME, procore-sync home) and the same settings otherwise.
  ``kill_worker`` kills a host as a power cut would: the worker and every process under it,
  its flow runs (which Prefect starts in sessions of their own) included, with SIGKILL.

Used by ``tests/test_cluster.py``, ``procore-sync demo --cluster`` (``app/demo_cluster.py``) and
``bench/scale_out.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit
from typing import TYPE_CHECKING
from uuid import UUID

from prefect import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from app import local_postgres
from app.prefect_server import PrefectServer, die_with_parent, free_port, port_is_free
from deployments import WORK_POOL, companies
from deployments.crash_detection import install_crash_detection
from deployments.work_pool import ensure_work_pool
from procore_sync.settings import Settings

if TYPE_CHECKING:
    from sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[1]  # the checkout: the deployments' entrypoints are relative to it
# The server's services the suite turns off for its own server; a cluster runs them all.
SERVICES = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "REPOSSESSOR", "TRIGGERS", "EVENT_PERSISTER")
STOP_WAIT_S = 20.0
# Schedules that never fire while a cluster runs (once a year, at new year's midnight): for a test
# or a benchmark that starts every run itself.
NEVER = "0 0 1 1 *"
UNSCHEDULED = {"schedule_cron": NEVER, "full_resync_cron": NEVER, "reconcile_cron": NEVER, "schedules": {}}


def profile_table(profile: str, **settings: object) -> str:
    """One profile's table of a profiles file (``procore_sync/profiles.py``): each value written
    as JSON writes it, which TOML reads alike (quoted strings, numbers, an empty inline table)."""
    lines = [f"[{profile}]", *(f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value)}"
                               for key, value in settings.items())]
    return "\n".join(lines) + "\n"


@dataclass
class ClusterCompany:
    """A company of a cluster on one machine: its profile, its Procore (a sandbox) and its
    folder, which holds its sample ERP (``erp/erp.duckdb``) and, where its table names
    ``export_dir=export_dir`` (the test, the benchmark), its CSV exports (``export/``)."""

    profile: str
    company_id: int
    folder: Path
    sandbox: "SandboxServer"

    @property
    def erp(self) -> Path:
        return self.folder / "erp" / "erp.duckdb"

    @property
    def export_dir(self) -> Path:
        return self.folder / "export"

    def table(self, **settings: object) -> str:
        """The company's table in the profiles file; ``settings`` adds to its own."""
        return profile_table(self.profile, company_id=self.company_id, local_sandbox_url=self.sandbox.url,
                             erp_path=self.erp, **settings)


@dataclass
class Host:
    """One worker "host": its folder and, while it runs, its worker process."""

    number: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"


class Cluster:
    """``with Cluster(folder, profiles_file) as cluster``: everything up; stopped at the end.

    ``env``: settings every host (and the deploying step) gets besides the cluster's own, say
    the sandbox's URL or ``PROCORE_SYNC_QUOTA_ENABLED``. ``poll_s``: how often a worker asks for
    runs (Prefect's default is 10 s). ``worker_limit``: flow runs at once per worker.
    ``crash_after``: the crash detection's wait for a silent run, when not the product's
    (``deployments/crash_detection.py``). ``flows``: only these flows' deployments (a test's),
    not all 54 of each profile (all when none are named). ``port``: the Prefect server's (and its UI's), when free; any
    free port otherwise."""

    def __init__(self, folder: Path, profiles_file: Path, *, workers: int = 2, env: dict[str, str] | None = None,
                 poll_s: float = 10.0, worker_limit: int | None = None, crash_after: timedelta | None = None,
                 flows: Iterable[str] = (), port: int | None = None) -> None:
        self.folder, self.profiles_file = folder.resolve(), profiles_file.resolve()
        self.extra_env, self.poll_s, self.worker_limit = env or {}, poll_s, worker_limit
        self.crash_after, self.flows = crash_after, list(flows)
        # Never another server's: PrefectServer would reuse one already answering there.
        self.port = port if port is not None and port_is_free(port) else free_port()
        self.hosts = [Host(i, self.folder / f"host-{i}") for i in range(workers)]
        self.postgres: local_postgres.LocalPostgres | None = None
        self.server: PrefectServer | None = None
        self.state_url = ""

    @property
    def api_url(self) -> str:
        assert self.server is not None, "the cluster is not started"
        return self.server.api_url

    def env(self) -> dict[str, str]:
        """The environment of every process of the cluster but the server: one server, one state
        database, one profiles file, this checkout's code."""
        return os.environ | {
            "PREFECT_API_URL": self.api_url,
            "PROCORE_SYNC_STATE_URL": self.state_url,
            "PROCORE_SYNC_PROFILES_FILE": str(self.profiles_file),
            "PROCORE_SYNC_DIR": str(ROOT),
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        } | self.extra_env

    # --- up ---------------------------------------------------------------------------------

    def start(self) -> "Cluster":
        bin_dir = local_postgres.binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (initdb, pg_ctl): a cluster needs it")
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.postgres = local_postgres.LocalPostgres(bin_dir, free_port()).start()
            self._start_server(self.postgres.create_database("prefect"))
            self.postgres.create_database("state")
            self.state_url = self.postgres.url("state")
            self._create_schemas()
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                with get_client(sync_client=True) as client:
                    ensure_work_pool(client)
            for host in self.hosts:  # they start while the deployments are made
                self.start_worker(host.number)
            self._deploy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, database_url: str) -> None:
        env = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url}
        env |= {f"PREFECT_SERVER_SERVICES_{service}_ENABLED": "true" for service in SERVICES}
        self.server = PrefectServer(self.folder / "server", port=self.port, env=env).start()

    def profiles(self) -> list[Settings]:
        """Every profile's settings, as the hosts make them."""
        base = Settings(_env_file=None, state_url=self.state_url, profiles_file=self.profiles_file)
        return companies(base)

    def _create_schemas(self) -> None:
        """Each profile's schema of the state database (the operator's step: docs/deployments.md)."""
        import psycopg

        with psycopg.connect(self.state_url, autocommit=True) as connection:
            for settings in self.profiles():
                assert settings.state_url is not None
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_schema_of(settings.state_url.get_secret_value())}")

    def _deploy(self) -> None:
        """The work pool and every profile's deployments on it, and the automations (crash
        detection; alerts when configured), as an operator does it (docs/deployments.md)."""
        deploying = self.folder / "deploy"
        deploying.mkdir(exist_ok=True)
        only = [option for flow in self.flows for option in ("--flow", flow)]
        self._run([sys.executable, "-m", "app.cli", "deployments", "--apply", *only], deploying)
        if self.crash_after is not None:
            with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
                install_crash_detection(self.crash_after)

    def _run(self, command: list[str], cwd: Path) -> None:
        done = subprocess.run(command, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=600,
                              check=False)
        (self.folder / "commands.log").open("a").write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr[-2000:]}")

    # --- runs -------------------------------------------------------------------------------

    def start_sync_alls(self, profiles: Iterable[str]) -> dict[str, UUID]:
        """Each profile's sync-all deployment run, started now and taken by whichever host is free."""
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            return {profile: run_deployment(f"sync-all/{profile}-sync-all", timeout=0).id for profile in profiles}

    def final_states(self, run_ids: Iterable[UUID]) -> dict[UUID, str] | None:
        """Each run's final state type (``COMPLETED``, ``FAILED``...), or None while any is going."""
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}), get_client(sync_client=True) as client:
            states = {run_id: client.read_flow_run(run_id).state for run_id in run_ids}
        if any(state is None or not state.is_final() for state in states.values()):
            return None
        return {run_id: state.type.value for run_id, state in states.items() if state is not None}

    # --- hosts ------------------------------------------------------------------------------

    def start_worker(self, number: int) -> Host:
        """Start host ``number``'s worker (again, after ``kill_worker``)."""
        host = self.hosts[number]
        if host.process is not None and host.process.poll() is None:
            return host
        home = host.folder / "procore-sync"
        home.mkdir(parents=True, exist_ok=True)
        env = self.env() | {
            "PREFECT_HOME": str(host.folder / "prefect"),
            "PROCORE_SYNC_HOME": str(home),
            "PREFECT_WORKER_QUERY_SECONDS": str(self.poll_s),
        }
        limit = ["--limit", str(self.worker_limit)] if self.worker_limit else []
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL,
                   "--name", f"host-{number}", *limit]
        with host.log.open("ab") as log:
            # A session of its own, as a host's; gone with this process however it ends.
            host.process = subprocess.Popen(command, cwd=host.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, preexec_fn=die_with_parent)
        return host

    def kill_worker(self, number: int) -> list[int]:
        """Kill host ``number`` at once: its worker and every process under it; returns their pids."""
        host = self.hosts[number]
        if host.process is None:
            return []
        killed = _kill_tree(host.process.pid)
        host.process.wait()
        host.process = None
        return killed

    def host_of(self, flow_run_id: str) -> int | None:
        """The host whose processes run the flow run, if any does."""
        for host in self.hosts:
            if host.process is None:
                continue
            for pid in process_tree(host.process.pid):
                if _environ(pid).get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                    return host.number
        return None

    # --- down -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the workers (and their runs), the server, then PostgreSQL."""
        _stop_trees([host.process for host in self.hosts if host.process is not None])
        for host in self.hosts:
            host.process = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


def _schema_of(url: str) -> str:
    """The schema a state URL puts first on its search path (``options=-csearch_path=...``)."""
    options = " ".join(parse_qs(urlsplit(url).query).get("options", []))
    [schema] = [o.split("=", 1)[1] for o in options.split() if o.startswith("-csearch_path=")]
    return schema


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc (Linux)."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            found.setdefault(parent, []).append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, whatever session they started."""
    children, found, queue = _children(), [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += children.get(current, [])
    return found


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its descendants together: stopped first, so that none starts another
    process or notices the others die before it dies itself."""
    stopped: list[int] = []
    while more := [p for p in process_tree(pid) if p not in stopped]:
        _signal_all(more, signal.SIGSTOP)
        stopped += more
    _signal_all(stopped, signal.SIGKILL)
    return stopped


def _stop_trees(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to the workers and their runs at once, SIGKILL to whatever is left after
    ``STOP_WAIT_S``: the hosts stop together, so a slow one costs one wait, not one each."""
    pids = [pid for process in processes for pid in process_tree(process.pid)]
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        for process in processes:
            process.poll()  # reaps the worker: a zombie is not alive
        time.sleep(0.2)
    left = {p for process in processes for p in process_tree(process.pid)} | set(pids)
    _signal_all([p for p in left if alive(p)], signal.SIGKILL)
    for process in processes:
        process.wait()


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
