"""Benchmark: many companies on 1, 2 and 4 worker hosts, each company held to its own Procore quota.

For each number of workers, a cluster on this machine (``app/cluster.py``: PostgreSQL, a Prefect
server on it, the process work pool, N workers each in a folder of its own) syncs ``--companies``
sample companies at ``--scale``, one profile each, every company with a sandbox of its own at
Procore's limits (3,600 calls an hour, 25 per 10 s) and its own shared budget. All companies'
first sync-all start at once; each worker runs ``--slots`` flow runs at a time, as a host sized
for that many companies would. Printed per number of workers:

- ``wall_s``: from starting the runs to the last one ending; ``completed``: runs that completed;
- ``calls`` (all companies) and ``429s`` (Procore's refusals: the budgets should leave none);
- ``busiest_s``: the longest company's physical limit (the time Procore's windows need for its
  calls, sent as early as admitted): no number of workers can go below it;
- ``quota_use``: per company, the share of its quota's physical limit it used over the wall
  (physical limit / wall), as the mean and the lowest of the companies;
- the state database's load over the run (PostgreSQL's own statistics): transactions
  committed, rows written (inserted, updated, deleted), rows read, and the most connections
  seen at once.

While the work is bound by the quota the wall time falls as workers are added, until every
company runs at once (workers x slots >= companies) and the wall is the busiest company's quota.

    .venv/bin/python bench/scale_out.py [--companies 8] [--workers 1,2,4] [--slots 2] [--scale 1] [--json]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _harness import company_parser, print_rows

import psycopg

from app.cluster import UNSCHEDULED, Cluster, ClusterCompany
from demo import sample_erp
from quota import physical_limit_s
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread

COLUMNS = ("workers", "slots", "wall_s", "completed", "calls", "429s", "busiest_s", "quota_use", "lowest_use",
           "db_commits", "db_rows_written", "db_rows_read", "db_peak_conns")
RUN_TIMEOUT_S = 4 * 3600.0


@dataclass
class Counted:
    """One sandbox's admitted and refused calls, counted at its quota."""

    admitted: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Company(ClusterCompany):
    counted: Counted
    config: SandboxConfig

    def physical_s(self) -> float:
        limits = self.config
        return physical_limit_s(self.counted.admitted, limits.hourly_limit, limits.hourly_window_s,
                                limits.spike_limit, limits.spike_window_s)


def counting(sandbox: SandboxServer) -> Counted:
    """Count the calls the sandbox's quota admits and refuses (its own counters reset by window)."""
    quota, counted = sandbox.app.state.sandbox.quota, Counted()
    consume = quota.consume

    def counted_consume(key: str):  # noqa: ANN202 - the sandbox's QuotaStatus
        status = consume(key)
        with counted.lock:
            counted.admitted += status.allowed
            counted.refused += not status.allowed
        return status

    quota.consume = counted_consume
    return counted


@contextmanager
def companies(work: Path, erp: Path, count: int) -> Iterator[list[Company]]:
    """``count`` companies, each with its sandbox (Procore's limits) and its copy of the ERP."""
    with ExitStack() as stack:
        made = []
        for number in range(1, count + 1):
            config = SandboxConfig(company_id=100 + number)
            sandbox = stack.enter_context(start_in_thread(config))
            folder = work / f"company-{number}"
            shutil.copytree(erp, folder / "erp")
            made.append(Company(f"company-{number}", config.company_id, folder, sandbox, counting(sandbox), config))
        yield made


class StateLoad:
    """The state database's statistics over a run, and its most connections seen at once."""

    FIGURES = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")

    def __init__(self, url: str) -> None:
        self.url, self.peak = url, 0
        self._stop = threading.Event()
        self._before = self._read()[0]
        self._thread = threading.Thread(target=self._watch, name="state-load", daemon=True)
        self._thread.start()

    def _read(self) -> tuple[dict[str, int], int]:
        columns = ", ".join(self.FIGURES)
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute("SELECT pg_stat_clear_snapshot()")
            row = connection.execute(f"SELECT {columns}, numbackends FROM pg_stat_database"
                                     " WHERE datname = current_database()").fetchone()
        assert row is not None
        return dict(zip(self.FIGURES, row[:-1], strict=True)), int(row[-1]) - 1  # not this connection

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self._read()[1])

    def done(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        time.sleep(0.6)  # PostgreSQL publishes its statistics at most every 500 ms
        after = self._read()[0]
        change = {name: after[name] - self._before[name] for name in self.FIGURES}
        return {"db_commits": change["xact_commit"],
                "db_rows_written": change["tup_inserted"] + change["tup_updated"] + change["tup_deleted"],
                "db_rows_read": change["tup_fetched"], "db_peak_conns": self.peak}


def run_on(workers: int, slots: int, erp: Path, count: int) -> dict[str, object]:
    """One cluster of ``workers`` hosts syncing ``count`` companies from scratch; its row."""
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp, companies(Path(tmp), erp, count) as made:
        work = Path(tmp)
        profiles = work / "profiles.toml"
        profiles.write_text("\n".join(company.table(export_dir=company.export_dir, **UNSCHEDULED) for company in made))
        env = {"PROCORE_SYNC_ENVIRONMENT": "local", "PROCORE_SYNC_QUOTA_ENABLED": "true",
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        print(f"{workers} worker(s): starting the cluster...", file=sys.stderr, flush=True)
        with Cluster(work / "cluster", profiles, workers=workers, env=env, poll_s=2, worker_limit=slots) as cluster:
            assert cluster.postgres is not None
            load = StateLoad(cluster.postgres.url("state"))
            started = time.monotonic()
            run_ids = cluster.start_sync_alls(c.profile for c in made).values()
            print(f"{workers} worker(s): {count} sync-alls started", file=sys.stderr, flush=True)
            while (states := cluster.final_states(run_ids)) is None:
                if time.monotonic() - started > RUN_TIMEOUT_S:
                    raise RuntimeError(f"the runs did not end within {RUN_TIMEOUT_S:.0f} s: see {work}")
                time.sleep(2)
            wall = time.monotonic() - started
            database = load.done()
        uses = [company.physical_s() / wall for company in made]
        return {
            "workers": workers, "slots": slots, "wall_s": round(wall, 1),
            "completed": f"{sum(s == 'COMPLETED' for s in states.values())}/{count}",
            "calls": sum(c.counted.admitted for c in made), "429s": sum(c.counted.refused for c in made),
            "busiest_s": round(max(c.physical_s() for c in made), 1),
            "quota_use": round(sum(uses) / len(uses), 2), "lowest_use": round(min(uses), 2), **database,
        }


def main() -> None:
    parser = company_parser(__doc__)
    parser.add_argument("--companies", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4", help="numbers of worker hosts, one cluster each")
    parser.add_argument("--slots", type=int, default=2, help="flow runs at a time per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scale-out-erp-") as tmp:
        erp = Path(tmp) / "erp"
        sample_erp.generate(erp, scale=args.scale, seed=42)
        rows = []
        for workers in (int(n) for n in args.workers.split(",")):
            rows.append(run_on(workers, args.slots, erp, args.companies))
    if not args.json:
        print(f"{args.companies} companies at scale {args.scale:g}, {args.slots} flow runs at a time per worker")
    print_rows(rows, COLUMNS, args.json, width=10)


if __name__ == "__main__":
    main()
