"""Chaos run: nothing lost, nothing duplicated, nothing stuck, whatever Procore and the host do.

For each seed, the sample company is synced twice at the same time, each from its own copy of
the ERP, with its own state, into its own sandbox:

- **clean**: sync-all, the field works in Procore, sync-all (brings the field's work into the ERP),
  each sync-all run again until it completes (a loaded machine may still end one early);
- **faulty**: the sandbox answers 10 % of calls 500/503, loses 5 % of answers after committing
  the write, opens 429 bursts with ``Retry-After`` and adds latency spikes, while the runner
  (``procore-sync sync all`` in a child process, ``bench/_chaos_child.py``) is killed with SIGKILL
  in its first three runs, one moment each: while a write batch is in flight (the sandbox kills
  it from inside the N-th write call, after the write is committed), between a batch's answer and
  the recording of its outcomes, and right after an entity's cursor moved (before the run
  recorded its end). Then it is run again with the faults on until a run completes (at most
  ``RERUNS_WITH_FAULTS``), then with the faults off until one completes (at most
  ``RERUNS_WITHOUT_FAULTS``); the field plays the same round as on the clean side (faults off:
  the field is not under test), and the Procore → ERP leg runs the same way, faults on then off.

Then the two sides are compared record by record from the sandboxes' own stores, the ERP tables
and the CSV exports (``bench/_chaos_compare.py``), never through procore-sync's reconcile. It
prints per entity: records, missing, extra, different, and the faulty side's calls and time;
then money per project and cost code, to the cent, in Procore (budget, contract, commitment
and direct cost lines, change order and budget change lines, budget modifications), in the ERP
tables and in the CSV exports. Exit status 1 when any figure is not 0.

    .venv/bin/python bench/chaos.py [--seed 1 --seed 2 ...] [--scale 1] [--json]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import company_parser, print_rows  # noqa: E402
from _chaos_child import KILL_AT, SIGNAL  # noqa: E402
from _chaos_compare import Figures, Snapshot, verdict  # noqa: E402

from demo import sample_erp  # noqa: E402
from sandbox.app import create_app  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.server import SandboxServer, run_in_thread  # noqa: E402
from sandbox.store import KINDS  # noqa: E402

CHILD = Path(__file__).resolve().parent / "_chaos_child.py"
SEEDS = (1, 2, 3)
FAULTS: dict[str, Any] = {
    "error_rate": 0.10,
    "lost_response_rate": 0.05,
    "rate_limit_burst_rate": 0.01,
    "rate_limit_burst_s": 2,
    "latency_spike_rate": 0.02,
    "latency_spike_ms": 1500,
}
NO_FAULTS = {name: 0 for name in FAULTS} | {"rate_limit_burst_s": 2}
MOMENTS = ("loading", "batch_record", "cursor")
RERUNS_WITH_FAULTS = 5
RERUNS_WITHOUT_FAULTS = 3
FIELD_SEED = 7
COLUMNS = ("seed", "entity", "records", "missing", "extra", "different", "calls", "time_s")
UNLIMITED = {"spike_limit": 1_000_000, "hourly_limit": 1_000_000}
CLEAN_COMPANY, FAULTY_COMPANY = 1, 2


class KillSwitch:
    """ASGI wrapper of a sandbox: once armed, the N-th write call is handled in full (the write
    is committed), then the runner is SIGKILLed and the answer never leaves."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._left = 0
        self._victim: subprocess.Popen | None = None
        self.fired: str | None = None

    def arm(self, times: int, victim: subprocess.Popen) -> None:
        with self._lock:
            self._left, self._victim, self.fired = times, victim, None

    def disarm(self) -> None:
        with self._lock:
            self._left, self._victim, self.fired = 0, None, None

    def _reached(self, scope: dict[str, Any]) -> bool:
        write = scope["method"] in ("POST", "PATCH", "PUT", "DELETE") and scope["path"].startswith("/rest/")
        with self._lock:
            if not write or self._victim is None:
                return False
            self._left -= 1
            return self._left == 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._reached(scope):
            await self.app(scope, receive, send)
            return

        start: dict[str, Any] = {}

        async def held(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)

        await self.app(scope, receive, held)  # committed (unless a fault answered instead)
        victim = self._victim
        assert victim is not None
        self.fired = f"loading: {scope['method']} {scope['path']} handled, answer never sent"
        victim.send_signal(signal.SIGKILL)
        await send(start)  # the status line alone, as sandbox.gate drops an answer on purpose


def free_run_locks(company_id: int) -> None:
    """The killed runner's entity locks, freed as a real Prefect server's repossessor would free
    them a minute after their leases expire (this run's test server has no such service)."""
    from connectors import run_lock
    from flows import ENTITY_FLOWS

    run_lock.free(company_id, ENTITY_FLOWS)


@dataclass
class Run:
    """One sync-all of the runner: how it ended and what its entities said."""

    label: str
    exit_code: int
    killed_at: str | None
    summaries: list[dict[str, Any]]
    seconds: float

    @property
    def completed(self) -> bool:
        return self.exit_code == 0 and self.killed_at is None


@dataclass
class Side:
    name: str
    home: Path
    server: SandboxServer
    switch: KillSwitch
    prefect_api: str
    runs: list[Run] = field(default_factory=list)

    @property
    def erp(self) -> Path:
        return self.home / "erp" / "erp.duckdb"

    def env(self) -> dict[str, str]:
        config: SandboxConfig = self.server.app.state.config
        return {
            "PROCORE_SYNC_ENVIRONMENT": "local",
            "PROCORE_SYNC_LOCAL_SANDBOX_URL": self.server.url,
            "PROCORE_SYNC_CLIENT_ID": config.client_id,
            "PROCORE_SYNC_CLIENT_SECRET": config.client_secret,
            "PROCORE_SYNC_COMPANY_ID": str(config.company_id),
            "PROCORE_SYNC_ERP_PATH": str(self.erp),
            "PROCORE_SYNC_HOME": str(self.home / "state"),
            "PROCORE_SYNC_QUOTA_ENABLED": "false",
            "PREFECT_API_URL": self.prefect_api,
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }

    def faults(self, switches: dict[str, Any]) -> None:
        self.server.app.state.sandbox.faults.update(switches)

    def sync_all(self, label: str, kill: tuple[str, int] | None = None) -> Run:
        """One sync-all in a child process; killed at ``kill`` (moment, N) when it gets there."""
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        signal_file = logs / f"{len(self.runs):02d}-{label}.signal"
        env = os.environ | self.env() | {SIGNAL: str(signal_file)}
        if kill and kill[0] != "loading":
            env[KILL_AT] = f"{kill[0]}:{kill[1]}"
        started = time.monotonic()
        with (logs / f"{len(self.runs):02d}-{label}.out").open("w+") as out, \
                (logs / f"{len(self.runs):02d}-{label}.err").open("w") as err:
            child = subprocess.Popen([sys.executable, str(CHILD)], env=env, stdout=out, stderr=err)
            if kill and kill[0] == "loading":
                self.switch.arm(kill[1], child)
            killed_at = self._watch(child, signal_file)
            if killed_at:
                free_run_locks(self.server.app.state.config.company_id)
            out.seek(0)
            summaries = [json.loads(line) for line in out if line.startswith("{")]
        run = Run(label, child.returncode, killed_at, summaries, time.monotonic() - started)
        self.runs.append(run)
        return run

    def _watch(self, child: subprocess.Popen, signal_file: Path) -> str | None:
        """Wait for the child's end, killing it when it reports its stopping point."""
        try:
            while child.poll() is None:
                if signal_file.exists():
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    return signal_file.read_text(encoding="utf-8").strip()
                time.sleep(0.05)  # polling for the child's report, not timing the kill
            return self.switch.fired
        finally:
            self.switch.disarm()

    def until_completed(self, label: str, bound: int) -> None:
        for attempt in range(bound):
            if self.sync_all(f"{label}{attempt + 1}").completed:
                return

    def field(self) -> str:
        """The field's round in this side's Procore, through Procore's API."""
        from connectors.procore import ProcoreClient
        from demo.field_activity import simulate_field_activity
        from procore_sync.settings import Settings

        config: SandboxConfig = self.server.app.state.config
        settings = Settings(_env_file=None, environment="local", local_sandbox_url=self.server.url,
                            client_id=config.client_id, client_secret=config.client_secret,
                            company_id=config.company_id, quota_enabled=False)
        with ProcoreClient(settings) as client:
            return simulate_field_activity(client, config.company_id, seed=FIELD_SEED, round=1).describe()

    def snapshot(self) -> Snapshot:
        from connectors.erp_sink import ErpSink
        from connectors.state import StateStore
        from flows import ENTITY_FLOWS
        from _chaos_compare import read_exports

        store = self.server.store
        sink = ErpSink(self.erp, self.home / "state" / "export")
        tables = [t for spec, _ in ENTITY_FLOWS.values() if spec.inbound for t in spec.sink_tables]
        state = StateStore(self.home / "state" / "state.duckdb")
        outbound = [name for name, (spec, _) in ENTITY_FLOWS.items() if not spec.inbound]
        return Snapshot(
            records={kind: store.records(kind) for kind in KINDS},
            erp={t.name: (t.key, sink.rows(t)) for t in tables},
            exports=read_exports(sink.export_dir, {t.name: t.key for t in tables}),
            states={e: {k: s.status for k, s in state.record_states(e).items()} for e in outbound},
        )

    def calls_and_time(self) -> dict[str, tuple[int, float]]:
        totals: dict[str, list[float]] = {}
        for run in self.runs:
            for s in run.summaries:
                calls, seconds = totals.setdefault(s["entity"], [0, 0.0])
                totals[s["entity"]] = [calls + s["api_calls"], seconds + s["duration_s"]]
        return {e: (int(c), round(t, 1)) for e, (c, t) in totals.items()}


@contextmanager
def side(name: str, work: Path, erp: Path, prefect_api: str, config: SandboxConfig) -> Iterator[Side]:
    """A sandbox behind a kill switch, and a home holding its own copy of the ERP."""
    home = work / name
    shutil.copytree(erp, home / "erp")
    app = create_app(config)
    switch = KillSwitch(app)
    server_, thread, url = run_in_thread(switch, f"procore-sandbox-{name}")  # type: ignore[arg-type]
    with SandboxServer(app, server_, thread, url) as server:
        yield Side(name, home, server, switch, prefect_api)


def kill_points(seed: int, moments: tuple[str, ...]) -> list[tuple[str, int]]:
    """Three random moments of the first runs: which write call, batch or cursor move."""
    rng = random.Random(f"chaos:{seed}")
    top = {"loading": 40, "batch_record": 25, "cursor": 10}
    return [(moment, rng.randint(1, top[moment])) for moment in moments]


@dataclass
class SeedResult:
    seed: int
    lines: list[Figures]
    calls: dict[str, tuple[int, float]]
    runs: list[Run]
    kills: list[tuple[tuple[str, int], str | None]]
    clean: Snapshot
    faulty: Snapshot

    @property
    def zero(self) -> bool:
        return all(line.clean for line in self.lines)


def side_configs(seed: int) -> tuple[SandboxConfig, SandboxConfig]:
    """The clean and faulty sandboxes. Each side is a company of its own: both run on one Prefect
    server, where a company's entity runs take one run lock each (``connectors/run_lock.py``), so
    with one company id the clean side waited on locks the faulty side's killed runs held, and
    freeing those (``free_run_locks``) freed the clean side's too. The comparison names records
    by their identities, not ids, so the company id is no difference."""
    return (SandboxConfig(**UNLIMITED, company_id=CLEAN_COMPANY),
            SandboxConfig(**UNLIMITED, **FAULTS, seed=seed, company_id=FAULTY_COMPANY))


def run_seed(seed: int, erp: Path, work: Path, prefect_api: str,
             moments: tuple[str, ...] = MOMENTS) -> SeedResult:
    """Both sides of one seed, and the verdict."""
    from flows import ENTITY_FLOWS

    with ExitStack() as stack:
        clean_config, faulty_config = side_configs(seed)
        clean = stack.enter_context(side("clean", work, erp, prefect_api, clean_config))
        faulty = stack.enter_context(side("faulty", work, erp, prefect_api, faulty_config))
        with ThreadPoolExecutor(max_workers=1) as pool:  # the two sides share nothing: at once
            clean_done = pool.submit(clean_leg, clean)
            kills = faulty_leg(faulty, seed, moments)
            clean_done.result()
        clean_end, faulty_end = clean.snapshot(), faulty.snapshot()
        lines = verdict(clean_end, faulty_end, ENTITY_FLOWS)
        return SeedResult(seed, lines, faulty.calls_and_time(), faulty.runs, kills, clean_end, faulty_end)


def clean_leg(clean: Side) -> None:
    """The reference: each sync-all run again until it completes (no fault is injected here, but
    a run on a loaded machine may still end early, and the field's round must meet a synced
    company, as on the faulty side)."""
    for label in ("first", "after-field"):
        if label == "after-field":
            clean.field()
        clean.until_completed(f"{label}-", RERUNS_WITHOUT_FAULTS)
        if not clean.runs[-1].completed:
            raise RuntimeError(f"the clean side's {label} sync-all never completed: see {clean.home / 'logs'}")


def faulty_leg(faulty: Side, seed: int, moments: tuple[str, ...]) -> list[tuple[tuple[str, int], str | None]]:
    """The kills, then reruns with faults on, then off, the field's round, and the same again
    for the Procore → ERP leg; returns each kill point and where it struck (None: not reached)."""
    kills = [(point, faulty.sync_all(f"kill-{point[0]}", kill=point).killed_at)
             for point in kill_points(seed, moments)]
    faulty.until_completed("faults-on-", RERUNS_WITH_FAULTS)
    faulty.faults(NO_FAULTS)
    faulty.until_completed("faults-off-", RERUNS_WITHOUT_FAULTS)
    faulty.field()
    faulty.faults(FAULTS)
    faulty.until_completed("after-field-faults-on-", RERUNS_WITH_FAULTS)
    faulty.faults(NO_FAULTS)
    faulty.until_completed("after-field-faults-off-", RERUNS_WITHOUT_FAULTS)
    return kills


def rows_of(result: SeedResult) -> list[dict[str, Any]]:
    rows = []
    for line in result.lines:
        calls, seconds = result.calls.get(line.entity, ("", ""))
        rows.append({"seed": result.seed, "entity": line.entity, "records": line.records,
                     "missing": line.missing, "extra": line.extra, "different": line.different,
                     "calls": calls, "time_s": seconds})
    return rows


def report(result: SeedResult, as_json: bool) -> None:
    if not as_json:
        for point, fired in result.kills:
            print(f"seed {result.seed}: kill at {point[0]} #{point[1]}: {fired or 'NOT REACHED (the run ended first)'}")
        print(f"seed {result.seed}: runs of the faulty side: "
              + ", ".join(f"{r.label} ({'killed' if r.killed_at else 'exit ' + str(r.exit_code)}, {r.seconds:.0f} s)"
                          for r in result.runs))
    print_rows(rows_of(result), COLUMNS, as_json, width=12)
    if not as_json:
        for line in result.lines:
            for example in line.examples[:5]:
                print(f"  {line.entity}: {example}")


def main() -> None:
    parser = company_parser(__doc__)
    parser.add_argument("--seed", type=int, action="append", help="repeatable; default 1, 2 and 3")
    args = parser.parse_args()
    from app.prefect_server import temporary_prefect_server

    all_zero = True
    with tempfile.TemporaryDirectory() as tmp, temporary_prefect_server() as prefect_api:
        erp = Path(tmp) / "erp"
        sample_erp.generate(erp, scale=args.scale, seed=42)
        for seed in args.seed or SEEDS:
            started = time.monotonic()
            result = run_seed(seed, erp, Path(tmp) / f"seed-{seed}", prefect_api)
            report(result, args.json)
            kills_fired = all(fired for _, fired in result.kills)
            all_zero &= result.zero and kills_fired
            if not args.json:
                print(f"seed {seed}: {'every figure 0' if result.zero else 'FIGURES NOT 0'}"
                      f"{'' if kills_fired else ', a kill was not reached'}; {time.monotonic() - started:.0f} s\n")
    sys.exit(0 if all_zero else 1)


if __name__ == "__main__":
    main()
