"""The shared quota budget on a real Prefect server: created idempotently, enforced strictly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from connectors.state import StateStore
from connectors.quota import QuotaGate, SpikeLog, budget_for, ensure_quota_limit, quota_gate, spike_limit_name
from flows.entities import sync_vendors
from procore_sync.settings import Settings
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, SuitePostgres, settings_env
from tests.support import engine_runtime, run_vendors

pytestmark = pytest.mark.usefixtures("prefect_api")


def read_limit(name: str):
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_limits_are_created_from_settings_and_updated_in_place() -> None:
    settings = Settings(quota_limit_name="quota-test-idempotent", quota_per_hour=3600, quota_spike_per_10s=25)
    ensure_quota_limit(settings)
    first = read_limit(settings.quota_limit_name)
    ensure_quota_limit(settings.model_copy(update={"quota_per_hour": 600}))
    second = read_limit(settings.quota_limit_name)
    assert first.id == second.id
    expected = budget_for(600, 25)
    assert (second.limit, second.slot_decay_per_second) == (expected.hour_limit, pytest.approx(expected.hour_per_second))


def test_both_windows_are_budgeted_apart() -> None:
    """The hour is a bucket of the whole hour refilling at the hour's average; the spike window is
    its own limit of (almost) all its calls, so a sync bursts at the spike rate while the hour has
    room. The old single bucket refilled at 80 % of the hour's average and burst 14 calls."""
    settings = Settings(quota_limit_name="quota-test-windows", quota_per_hour=600, quota_spike_per_10s=25,
                        quota_hour_s=120)
    ensure_quota_limit(settings)
    hour, spike = read_limit("quota-test-windows"), read_limit(spike_limit_name("quota-test-windows"))
    assert (hour.limit, hour.slot_decay_per_second) == (600, pytest.approx(600 / 120))
    assert (spike.limit, spike.slot_decay_per_second) == (24, 0.0)


def test_a_burst_spends_the_spike_window_at_once_and_each_call_holds_its_slot_a_window_after_it() -> None:
    """Slots are taken four at a time (one Prefect request per four calls) and each lease is given
    back a window after the last call made under it: no call leaves the window early."""
    settings = Settings(quota_limit_name="quota-test-burst", quota_per_hour=3600, quota_spike_per_10s=25)
    ensure_quota_limit(settings)
    now = [1000.0]
    spike = SpikeLog(spike_limit_name(settings.quota_limit_name), 24, hold_s=10.0, clock=lambda: now[0], background=False)
    gate = QuotaGate(settings.quota_limit_name, chunk=10, spike=spike, wait_limit_s=30)
    for _ in range(24):
        gate()()  # none waits: the spike window's calls are all there at once (and answered)
        now[0] += 0.1
    assert read_limit(spike_limit_name("quota-test-burst")).active_slots == 24
    assert read_limit("quota-test-burst").active_slots >= 24  # the hour counts them too
    now[0] = 1010.25
    assert spike.release_due() == 0  # the first four calls, the last at 1000.3, hold their slots...
    now[0] = 1010.35
    assert spike.release_due() == 1  # ...until a window after it, and not a moment longer
    assert read_limit(spike_limit_name("quota-test-burst")).active_slots == 20
    now[0] = 1012.35
    assert spike.release_due() == 5
    assert read_limit(spike_limit_name("quota-test-burst")).active_slots == 0


class ManualTime:
    """The logs' clock and sleep: a sleep moves the clock, nothing waits; then every log gives
    back what fell due, as its background thread would."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.logs: list[SpikeLog] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for log in self.logs:
            log.release_due()


@pytest.fixture
def manual_time() -> Iterator[ManualTime]:
    """A ManualTime whose logs give their slots back when the test ends, while the Prefect server
    is up: at the process's exit it is gone, and the logs' clients would try it for minutes."""
    time_ = ManualTime()
    yield time_
    for log in time_.logs:
        log.drain()


def spike_of(name: str, time_: ManualTime, slots: int = 24) -> SpikeLog:
    settings = Settings(quota_limit_name=name, quota_per_hour=3600, quota_spike_per_10s=slots + 1)
    ensure_quota_limit(settings)
    log = SpikeLog(spike_limit_name(name), slots, hold_s=10.0, clock=time_.clock, sleep=time_.sleep,
                   background=False)
    time_.logs.append(log)
    return log


def call(spike: SpikeLog) -> None:
    """A call on one of the log's slots, answered at once."""
    answered = spike.take(time.monotonic() + 30)
    assert answered is not None
    answered()


def test_a_process_spends_its_slots_again_once_their_calls_left_the_window(manual_time: ManualTime) -> None:
    """A slot held under a lease carries one call per window for the lease's life: the process
    spends it again, without a Prefect request, once its call has left the window. Taking and
    giving back a lease per few calls cost two Prefect requests and a refusal's wait each time,
    and held a sync-all to 0.75 of Procore's rate."""
    time_ = manual_time
    spike = spike_of("quota-test-reuse", time_)
    for _ in range(24):
        call(spike)
        time_.now += 0.1
    assert spike.stats.leases == 6
    time_.now = 1010.0  # the first call left the window
    for _ in range(4):
        call(spike)  # at 1010.0, .1, .2, .3: one free slot each
    assert spike.stats.leases == 6
    assert time_.now == pytest.approx(1010.3)
    assert read_limit(spike_limit_name("quota-test-reuse")).active_slots == 24


def test_a_slot_is_held_a_window_after_its_call_was_answered_not_after_it_was_taken(manual_time: ManualTime) -> None:
    """Procore counts a call when it arrives, which on a busy host (sync-all's threads, the GIL, a
    big batch on the wire) can be seconds after its slot was taken: the slot is spent again only
    a window after the call's answer, which came after Procore counted it. Counted from the
    take, the sandbox saw 25 calls in a window of a 24-slot budget (bench/quota.py at scale 5)."""
    time_ = manual_time
    spike = spike_of("quota-test-slow-call", time_, slots=1)
    answered = spike.take(time.monotonic() + 30)
    assert answered is not None
    time_.now = 1003.0  # the call reached Procore late and was answered at 1003
    answered()
    time_.now = 1010.5  # a window after the take, not after the answer: the slot is still held
    call(spike)
    assert time_.now == pytest.approx(1013.0)


def test_two_processes_never_make_more_calls_in_a_window_than_its_slots(manual_time: ManualTime) -> None:
    """Two logs of one limit (two processes), a call each in turn for two minutes of calls: no 10 s
    window ever holds more than the limit's calls, and no call is made under a lease that may
    expire before the call has left the window."""
    time_ = manual_time
    logs = [spike_of("quota-test-two", time_, slots=8) for _ in range(2)]
    calls: list[float] = []
    while time_.now < 1120.0:
        for spike in logs:
            call(spike)
            calls.append(time_.now)
            time_.now += 0.05
    most = max(sum(1 for c in calls if start <= c < start + 10.0) for start in calls)
    assert most == 8
    assert len(calls) >= 8 * 11  # each window's calls spent: eleven full windows in 120 s
    assert all(spike.stats.leases > 2 for spike in logs)  # leases taken anew as they age


def test_a_runs_gate_creates_the_budget_from_its_settings_on_a_server_that_lacks_it() -> None:
    """A deployment served by a worker on a new Prefect server had no budget (only the CLI made
    it) and every run failed with QuotaBudgetMissing: each process makes it from its settings."""
    settings = Settings(quota_limit_name="quota-test-made-by-the-gate", quota_per_hour=1234, quota_spike_per_10s=9)
    gate = quota_gate(settings)
    assert gate is not None
    gate()()  # a call's slots (answered at once): the budget exists
    with get_client(sync_client=True) as client:
        hour = client.read_global_concurrency_limit_by_name(settings.quota_limit_name)
        spike = client.read_global_concurrency_limit_by_name(spike_limit_name(settings.quota_limit_name))
    assert (hour.limit, spike.limit) == (1234, 8)


def test_gate_refuses_to_run_once_its_limit_is_gone() -> None:
    name = "quota-test-deleted-under-the-gate"
    gate = quota_gate(Settings(quota_limit_name=name))
    assert gate is not None
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)
    with pytest.raises(Exception, match=name):
        gate()


def test_gate_is_off_when_the_budget_is_disabled() -> None:
    assert quota_gate(Settings(quota_enabled=False)) is None


def test_every_procore_call_draws_one_slot(sandbox, small_erp: SampleErp, tmp_path, monkeypatch) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path,
                            PROCORE_SYNC_QUOTA_ENABLED="true", PROCORE_SYNC_QUOTA_LIMIT_NAME="quota-test-flow",
                            PROCORE_SYNC_QUOTA_PER_HOUR="100000", PROCORE_SYNC_QUOTA_SPIKE_PER_10S="1000")
    ensure_quota_limit(settings)
    gate, acquired = quota_gate(settings), []

    def counted() -> Callable[[], None]:
        acquired.append(True)
        return gate()

    summary = run_vendors(engine_runtime(settings, before_request=counted))
    assert summary.status == "completed"
    assert len(acquired) == summary.api_calls == 3  # company check, tool check, one sync


def test_the_real_flow_goes_through_the_budget(sandbox, small_erp: SampleErp, tmp_path, monkeypatch) -> None:
    """With the budget on, the flow's run makes the budget (none existed) and takes its calls'
    slots from it: an hour of 36 calls refills one slot in 100 s, so the run's chunk is still
    held when it ends."""
    name = f"quota-test-made-by-the-run-{tmp_path.name}"
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_QUOTA_ENABLED="true",
                 PROCORE_SYNC_QUOTA_LIMIT_NAME=name, PROCORE_SYNC_QUOTA_PER_HOUR="36")
    state = sync_vendors(options=SyncOptions(), return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        hour = client.read_global_concurrency_limit_by_name(name)
    assert hour.limit == 36 and hour.active_slots >= 9  # one chunk of 10, barely refilled



def test_a_full_spike_window_waits_for_its_oldest_call_then_goes_on() -> None:
    """A refused spike slot is tried again as soon as one of ours leaves the window (injected
    clock and sleep: no real wait), not failed nor left to Prefect's growing Retry-After."""
    settings = Settings(quota_limit_name="quota-test-full", quota_per_hour=3600, quota_spike_per_10s=4)
    ensure_quota_limit(settings)
    now, slept = [1000.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    spike = SpikeLog(spike_limit_name(settings.quota_limit_name), 3, hold_s=10.0, clock=lambda: now[0],
                     sleep=sleep, background=False)
    gate = QuotaGate(settings.quota_limit_name, chunk=10, spike=spike, wait_limit_s=30)
    for _ in range(3):  # calls at 1000, 1001 and 1002
        gate()()
        now[0] += 1.0
    now[0] += 3.0
    gate()()  # at 1006 the window is full: it goes when the first call leaves it, at 1010
    assert sum(slept) == pytest.approx(4.0)
    assert read_limit(spike_limit_name("quota-test-full")).active_slots == 3  # 1001, 1002, 1010


def test_a_drain_at_exit_cut_short_by_ctrl_c_leaves_its_slots_to_their_leases_quietly(manual_time: ManualTime) -> None:
    """A process ending while its last calls are in the window waits them out to give its slots
    back; Ctrl-C in that wait (the demo's served runs, stopped with it) must not end the process
    with a traceback: the leases free the slots on the server."""
    time_ = manual_time
    spike = spike_of("quota-test-interrupted-drain", time_)
    assert spike.take(time.monotonic() + 30)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    spike._sleep = interrupted
    spike.drain()  # returns: nothing raised
    assert read_limit(spike_limit_name("quota-test-interrupted-drain")).active_slots == 4


EXIT_AFTER_THE_SERVER = """
import sys
from connectors.quota import quota_gate
from app.prefect_server import temporary_prefect_server
from procore_sync.settings import Settings

with temporary_prefect_server(sys.argv[1] if len(sys.argv) > 1 else None):
    quota_gate(Settings(quota_enabled=True, quota_limit_name="quota-test-exit"))()()
print("the Prefect server is gone", flush=True)
"""


def test_a_process_whose_prefect_server_went_first_still_ends_and_starts_none(
    suite_postgres: SuitePostgres | None,
) -> None:
    """At exit a process gives its spike slots back, a window after its last call; when its
    Prefect server stopped first (a test session's, a stopped worker's), Prefect's client tried
    each release again for a minute: the process hung for minutes after its work was done. The
    bound is reached only by such a hang (the slots' window is 10 s). Nor may the giving back,
    with no server left in the settings, start a Prefect server of its own (Prefect's ephemeral
    one, left running once the process is gone): every process the child started carries its
    mark in its environment."""
    mark = f"quota-exit-{uuid.uuid4()}"
    # As at the end of a test session's worker: no server known but the one that went.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"TEST_MARK": mark}
    # Its server keeps its data in a copy of the run's migrated Prefect database, where there is one.
    database = [suite_postgres.prefect_database("prefect_exit")] if suite_postgres else []
    process = subprocess.Popen([sys.executable, "-c", EXIT_AFTER_THE_SERVER, *database], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert process.stdout is not None and "gone" in process.stdout.readline()
        assert process.wait(timeout=40) == 0
        assert not marked(mark), f"left running: {marked(mark)}"
    finally:
        process.kill()
        process.wait()
        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)


def marked(mark: str) -> list[int]:
    """Processes whose environment holds ``TEST_MARK=mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"TEST_MARK={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_each_profiles_run_spends_its_own_companys_budget(sandbox, small_erp: SampleErp, tmp_path, monkeypatch) -> None:
    """Two companies (profiles) in one installation: each run makes and takes slots from the
    budget its profile names, derived from its company; the other company's budget is untouched."""
    from procore_sync.profiles import load_settings
    from sandbox.config import SandboxConfig
    from sandbox.server import start_in_thread

    base = f"quota-test-profiles-{tmp_path.name}"
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_QUOTA_ENABLED="true",
                 PROCORE_SYNC_QUOTA_LIMIT_NAME=base, PROCORE_SYNC_QUOTA_PER_HOUR="36",
                 PROCORE_SYNC_PROFILES_FILE=str(tmp_path / "profiles.toml"))
    with start_in_thread(SandboxConfig(company_id=2)) as second:
        (tmp_path / "profiles.toml").write_text(
            f'[acme]\ncompany_id = 1\nerp_path = "{small_erp.path}"\n\n'
            f'[globex]\ncompany_id = 2\nlocal_sandbox_url = "{second.url}"\nerp_path = "{small_erp.path}"\n')
        acme, globex = load_settings("acme"), load_settings("globex")
        assert (acme.quota_limit_name, globex.quota_limit_name) == (f"{base}-local-1", f"{base}-local-2")
        assert sync_vendors(options=SyncOptions(), profile="acme", return_state=True).is_completed()
        acme_slots = read_limit(acme.quota_limit_name).active_slots
        with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name(globex.quota_limit_name)  # globex has spent nothing
        assert sync_vendors(options=SyncOptions(), profile="globex", return_state=True).is_completed()
    assert acme_slots >= 9 and read_limit(globex.quota_limit_name).active_slots >= 9
    assert read_limit(acme.quota_limit_name).active_slots <= acme_slots  # globex's calls took none of acme's
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_global_concurrency_limit_by_name(base)  # and no run used the base budget
    # Each company's run landed in its own state, under its own home.
    assert acme.state_path == tmp_path / "acme" / "state.duckdb" and globex.state_path.parent == tmp_path / "globex"
    assert [r.status for r in StateStore(acme.state_path).runs("vendors")] == ["completed"]
    assert [r.status for r in StateStore(globex.state_path).runs("vendors")] == ["completed"]
