"""Benchmark: how much of Procore's quota a sync uses, against the physical limit of both windows.

Runs the sample company's first sync-all against the sandbox with Procore's windows switched on
(the shared budget on, as in production) and prints, per set of limits: API calls, wall time,
the physical limit for those calls (the time the two windows need for them, sent as early as
Procore admits them), the ratio (goal >= 0.9), 429s received (goal 0), and where the time went
(waiting in the shared budget's acquisitions, the Prefect server's refusals, the client's pacing
by Procore's headers).

Then a run that needs three hours of quota: the ``vendors`` deployment, served by a real serve
process, one supplier per call, with an hour shortened to ``--hour-s`` seconds (the sandbox's
``hourly_window_s``) and the hour's limit a third of the calls. It must finish within three
windows plus 5 %, waiting in AwaitingQuota between them, with no 429.

    .venv/bin/python bench/quota.py [--scale 1] [--sets default,small] [--hour-s S]
                                    [--three-hour-s 120] [--json] [--detail]

``--three-hour-s 0`` skips the three-hour run, ``--sets ''`` runs it alone (with its timeline:
states, each deferral's until, the sandbox's hour openings); ``--hour-s`` sets the hour of both sets;
``--detail`` prints, per entity run, its calls and its time at the gate, in HTTP and elsewhere.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from _harness import bench_environment, company_parser, print_rows, sample_company

import httpx
import requests
from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL

from connectors.erp import DuckDbErpSource
from connectors.procore import ProcoreClient
from connectors.quota import QuotaGate, ensure_quota_limit, quota_gate
from flows.sync_all import sync_all
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from tasks.spec import SyncOptions

# (hourly limit, spike limit per 10 s, the hour's length): Procore's defaults, and a small hour
# whose calls need two of its windows at scale 1, shortened so that the wait between them is
# minutes, not an hour (``--hour-s`` sets both).
SETS = {"default": (3600, 25, 3600.0), "small": (600, 25, 300.0)}
SPIKE_WINDOW_S = 10.0
COLUMNS = ("run", "hourly", "hour_s", "calls", "wall_s", "physical_s", "ratio", "429s",
           "budget_wait_s", "denials", "pacing_wait_s")


def physical_limit_s(calls: int, hourly: int, hour_s: float, spike: int, spike_s: float = SPIKE_WINDOW_S) -> float:
    """Seconds from the first call to the last when every call goes as early as Procore admits
    it: a fixed hour of ``hourly`` calls opening at its first call (as the sandbox counts it) and
    a rolling window of ``spike`` calls in any ``spike_s``."""
    t, opened, in_hour, recent = 0.0, 0.0, 0, deque[float]()
    for _ in range(calls):
        if in_hour == hourly or t >= opened + hour_s:
            t, opened, in_hour = max(t, opened + hour_s), max(t, opened + hour_s), 0
        while recent and recent[0] <= t - spike_s:
            recent.popleft()
        if len(recent) == spike:
            t = recent.popleft() + spike_s
        recent.append(t)
        in_hour += 1
    return t


@dataclass
class RunTally:
    """One entity run's calls and where its time went: at the budget's gate, in HTTP."""

    calls: int = 0
    gate_s: float = 0.0
    http_s: float = 0.0


@dataclass
class Tally:
    """What the sandbox admitted and refused, and where the client's time went."""

    calls: int = 0
    refused: int = 0
    budget_wait_s: float = 0.0
    denials: int = 0
    denied_wait_s: float = 0.0
    runs: dict[UUID, RunTally] = field(default_factory=dict)
    admitted_at: list[float] = field(default_factory=list)  # time.monotonic of each admitted call
    windows: list[float] = field(default_factory=list)  # time.monotonic of each Procore hour's opening
    refusals: list[tuple[float, int, float]] = field(default_factory=list)  # when, the window's limit, its reset in

    def run(self) -> RunTally:
        """The tally of the entity run this thread works for."""
        context = FlowRunContext.get()
        run_id = context.flow_run.id if context and context.flow_run else UUID(int=0)
        return self.runs.setdefault(run_id, RunTally())


def _counting_denials(method, tally: Tally, is_async: bool):  # noqa: ANN001, ANN202
    """A Prefect client method that counts the server's refusals (423) of a slot and the
    Retry-After each asked for."""
    def count(exc: httpx.HTTPStatusError) -> None:
        if exc.response.status_code == 423:
            tally.denials += 1
            tally.denied_wait_s += float(exc.response.headers.get("Retry-After", 0))

    async def async_counted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        try:
            return await method(self, *args, **kwargs)
        except httpx.HTTPStatusError as exc:
            count(exc)
            raise

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        try:
            return method(self, *args, **kwargs)
        except httpx.HTTPStatusError as exc:
            count(exc)
            raise

    return async_counted if is_async else counted


# Where the budget asks the Prefect server for slots: the hour's rate_limit (async client, in
# Prefect's acquisition service) and the spike's leases (sync client).
SLOT_METHODS = ((PrefectClient, "increment_concurrency_slots", True),
                (SyncPrefectClient, "increment_concurrency_slots_with_lease", False))


@contextmanager
def tallied(sandbox, tally: Tally) -> Iterator[None]:  # noqa: ANN001 - the SandboxServer
    """Count admitted and refused calls at the sandbox and the Prefect server's refusals of a
    slot; time every call's wait at the budget's gate (summed over sync-all's threads)."""
    quota = sandbox.app.state.sandbox.quota
    consume, gate, send = quota.consume, QuotaGate.__call__, ProcoreClient._send

    def counted(key: str):  # noqa: ANN202
        opened = quota._usage.get(key) and quota._usage[key].hourly_start
        status = consume(key)
        if status.allowed and quota._usage[key].hourly_start != opened:
            tally.windows.append(time.monotonic())
        tally.calls += status.allowed
        if status.allowed:
            tally.admitted_at.append(time.monotonic())
        tally.refused += not status.allowed
        if not status.allowed:
            tally.refusals.append((time.monotonic(), status.limit, status.reset_at - status.now))
        return status

    def timed(self: QuotaGate) -> None:
        started = time.monotonic()
        try:
            return gate(self)
        finally:
            waited = time.monotonic() - started
            tally.budget_wait_s += waited
            tally.run().gate_s += waited

    def sent(self: ProcoreClient, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        run, started, gated = tally.run(), time.monotonic(), tally.run().gate_s
        try:
            return send(self, *args, **kwargs)
        finally:
            run.calls += 1
            run.http_s += time.monotonic() - started - (run.gate_s - gated)

    originals = [(cls, name, getattr(cls, name)) for cls, name, _ in SLOT_METHODS]
    for (cls, name, is_async), (_, _, method) in zip(SLOT_METHODS, originals):
        setattr(cls, name, _counting_denials(method, tally, is_async))
    quota.consume, QuotaGate.__call__, ProcoreClient._send = counted, timed, sent
    try:
        yield
    finally:
        quota.consume, QuotaGate.__call__, ProcoreClient._send = consume, gate, send
        for cls, name, method in originals:
            setattr(cls, name, method)


def limits(sandbox, hourly: int, hour_s: float, spike: int) -> None:  # noqa: ANN001
    """A fresh Procore for the set: no records, no calls counted, these windows."""
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=30).raise_for_status()
    body = {"hourly_limit": hourly, "hourly_window_s": hour_s, "spike_limit": spike, "spike_window_s": SPIKE_WINDOW_S}
    requests.put(f"{sandbox.url}/_sandbox/quota", json=body, timeout=30).raise_for_status()


def budget_env(name: str, hourly: int, hour_s: float, spike: int, home: Path) -> dict[str, str]:
    """The settings of a set: its own state, a new shared budget sized to the set's windows."""
    return {
        "PROCORE_SYNC_HOME": str(home),
        "PROCORE_SYNC_QUOTA_ENABLED": "true",
        "PROCORE_SYNC_QUOTA_LIMIT_NAME": name,
        "PROCORE_SYNC_QUOTA_PER_HOUR": str(hourly),
        "PROCORE_SYNC_QUOTA_HOUR_S": str(hour_s),
        "PROCORE_SYNC_QUOTA_SPIKE_PER_10S": str(spike),
    }


def row(run: str, hourly: int, hour_s: float, spike: int, wall_s: float, tally: Tally, pacing_s: float) -> dict:
    physical = physical_limit_s(tally.calls, hourly, hour_s, spike)
    return {"run": run, "hourly": hourly, "hour_s": hour_s, "calls": tally.calls, "wall_s": round(wall_s, 1),
            "physical_s": round(physical, 1), "ratio": round(physical / wall_s, 2) if wall_s else 0.0,
            "429s": tally.refused, "budget_wait_s": round(tally.budget_wait_s, 1),
            "denials": f"{tally.denials} ({tally.denied_wait_s:.0f} s)", "pacing_wait_s": round(pacing_s, 1),
            "final": "-", "awaiting_quota": "-", "within_3_windows_5pct": "-"}


def one_set(sandbox, label: str, hourly: int, spike: int, hour_s: float, tmp: Path,  # noqa: ANN001
            detail: bool = False) -> dict:
    limits(sandbox, hourly, hour_s, spike)
    os.environ.update(budget_env(f"bench-quota-{label}-{time.time_ns()}", hourly, hour_s, spike, tmp / label))
    ensure_quota_limit(Settings())
    tally = Tally()
    print(f"{label}: sync-all at {hourly}/{hour_s:g} s, {spike}/10 s...", file=sys.stderr, flush=True)
    with tallied(sandbox, tally):
        started = time.monotonic()
        summaries = sync_all(options=SyncOptions())
        wall_s = time.monotonic() - started
    if detail:
        print_detail(tally, started)
    return row(label, hourly, hour_s, spike, wall_s, tally, sum(s.waited_s for s in summaries))


DETAIL_COLUMNS = ("start_s", "end_s", "wall_s", "entity", "calls", "gate_s", "http_s", "other_s")


def print_detail(tally: Tally, started: float) -> None:
    """Per entity run (sync-all's first, then its revisits): when it ran, its calls, and its time
    at the gate, in HTTP (with Procore's pacing) and elsewhere (local work, Prefect, the state);
    then the spike log's leases and the slots they held unspent."""
    offset = time.time() - (time.monotonic() - started)  # wall clock of sync-all's start
    rows = []
    with get_client(sync_client=True) as client:
        for run_id, run in tally.runs.items():
            flow_run = client.read_flow_run(run_id) if run_id.int else None
            if flow_run is None or flow_run.start_time is None or flow_run.end_time is None:
                continue
            start, end = flow_run.start_time.timestamp() - offset, flow_run.end_time.timestamp() - offset
            rows.append({"start_s": round(start, 1), "end_s": round(end, 1), "wall_s": round(end - start, 1),
                         "entity": client.read_flow(flow_run.flow_id).name, "calls": run.calls,
                         "gate_s": round(run.gate_s, 1), "http_s": round(run.http_s, 1),
                         "other_s": round(end - start - run.gate_s - run.http_s, 1)})
    print_rows(sorted(rows, key=lambda r: r["start_s"]), DETAIL_COLUMNS, False, width=10)
    per_10s = Counter(int((t - started) // SPIKE_WINDOW_S) for t in tally.admitted_at)
    print("calls per 10 s:", " ".join(str(per_10s[k]) for k in range(max(per_10s, default=-1) + 1)))
    print("hours opened at s:", " ".join(f"{t - started:.1f}" for t in tally.windows))
    for at, limit, reset_in in tally.refusals:
        print(f"429 at {at - started:.1f} s: the window of {limit} calls, resetting in {reset_in:.1f} s")
    spike = quota_gate(Settings()).spike.stats
    print(f"spike leases {spike.leases}, refused {spike.refusals}, slots held unspent {spike.unspent}")


def three_hours(sandbox, suppliers: int, hour_s: float, tmp: Path) -> dict:  # noqa: ANN001
    """The vendors deployment, one supplier per call, an hour's limit a third of its calls."""
    from tests.support import final_state, served_deployments, wait_for  # the tests' serve helpers
    from prefect.deployments import run_deployment

    # One call per supplier plus a few checks; each resume repeats the checks, hence the margin.
    hourly = -(-suppliers // 3) + 10
    limits(sandbox, hourly, hour_s, 25)
    os.environ.update(budget_env(f"bench-quota-3h-{time.time_ns()}", hourly, hour_s, 25, tmp / "three-hours"))
    os.environ.update({"PROCORE_SYNC_BATCH_SIZE": "1", "PROCORE_SYNC_QUOTA_DEFER_AFTER_S": "5"})
    ensure_quota_limit(Settings())
    tally = Tally()
    print(f"three hours: vendors, one call per supplier, {hourly} calls per {hour_s:g} s...", file=sys.stderr, flush=True)
    with tallied(sandbox, tally), served_deployments(PREFECT_API_URL.value()):
        started = time.monotonic()
        run = run_deployment("vendors/vendors", timeout=0)
        final = wait_for(lambda: final_state(run.id), "the vendors run", timeout_s=6 * hour_s + 600)
        wall_s = time.monotonic() - started
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run.id)
    print_timeline(states, tally, started, hour_s)
    states = [s.name for s in states]
    result = row("three hours", hourly, hour_s, 25, wall_s, tally, 0.0)
    result["final"] = final
    result["awaiting_quota"] = states.count("AwaitingQuota")
    result["within_3_windows_5pct"] = wall_s <= 3 * hour_s * 1.05
    return result


def print_timeline(states: list, tally: Tally, started: float, hour_s: float) -> None:  # noqa: ANN001
    """The run's states from Prefect (an AwaitingQuota's ``until`` beside it) and the sandbox's
    hours (each opening with its first call, reset ``hour_s`` later), in seconds from the start."""
    offset = time.time() - (time.monotonic() - started)  # wall clock of the run's start
    events = [(t - started, f"Procore hour opens (resets at {t - started + hour_s:.1f})") for t in tally.windows]
    for state in states:
        until = state.state_details.scheduled_time if state.name == "AwaitingQuota" else None
        note = f" until {until.timestamp() - offset:.1f}" if until else ""
        events.append((state.timestamp.timestamp() - offset, f"{state.name}{note}"))
    for at, what in sorted(events):
        print(f"{at:8.1f}  {what}")
    print(f"calls {len(tally.admitted_at)}, last at {tally.admitted_at[-1] - started:.1f}" if tally.admitted_at else "")


def main() -> None:
    parser = company_parser(__doc__)
    parser.add_argument("--sets", default="default,small")
    parser.add_argument("--hour-s", type=float, default=None)
    parser.add_argument("--three-hour-s", type=float, default=120.0)
    parser.add_argument("--detail", action="store_true", help="per entity run: calls, gate, HTTP, other time")
    args = parser.parse_args()
    rows: list[dict] = []
    config = SandboxConfig()  # Procore's default windows; each set sets its own
    with sample_company(args.scale) as home, tempfile.TemporaryDirectory() as tmp, \
            bench_environment(home / "erp" / "erp.duckdb", home / "state", config=config) as sandbox:
        for label in [s for s in args.sets.split(",") if s]:
            hourly, spike, hour_s = SETS[label]
            rows.append(one_set(sandbox, f"{label} scale {args.scale:g}", hourly, spike, args.hour_s or hour_s, Path(tmp),
                               args.detail))
            print_rows(rows[-1:], COLUMNS, args.json)
        if args.three_hour_s:
            suppliers = sum(1 for _ in DuckDbErpSource(home / "erp" / "erp.duckdb").read("suppliers"))
            rows.append(three_hours(sandbox, suppliers, args.three_hour_s, Path(tmp)))
    print()
    print_rows(rows, COLUMNS + (("final", "awaiting_quota", "within_3_windows_5pct") if args.three_hour_s else ()),
               args.json, width=14)


if __name__ == "__main__":
    main()
