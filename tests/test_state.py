"""The state store: its API rules, its migrations and several processes writing at once."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from connectors import state as state_module
from connectors.state import (
    ActionRow,
    Migration,
    Outcome,
    StateSchemaTooNew,
    StateStore,
    StateStoreBusy,
    load_migrations,
)
from procore_sync.errors import ConfigError

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock tests move by hand, so history ordering and `since` filters are exact."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> StateStore:
    return StateStore(tmp_path / "nested" / "state.duckdb", clock=clock)


# --- migrations -------------------------------------------------------------------------------


def test_creates_parent_dirs_and_applies_every_migration(store: StateStore) -> None:
    assert store.path.exists()
    assert store.applied_migrations() == [m.version for m in load_migrations()]


def test_migrations_applied_once_when_opened_twice(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    StateStore(path)
    StateStore(path)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
    finally:
        con.close()
    assert sorted(rows) == [(m.version, 1) for m in load_migrations()]


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.duckdb"
    broken = Migration(99, "0099_broken.sql", "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();")
    monkeypatch.setattr(state_module, "load_migrations", lambda: [*load_migrations(), broken])
    with pytest.raises(duckdb.Error):
        StateStore(path)
    monkeypatch.undo()
    store = StateStore(path)
    assert 99 not in store.applied_migrations()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_done'").fetchone() == (0,)
    finally:
        con.close()


def test_a_state_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    StateStore(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', now())")
    con.close()
    with pytest.raises(StateSchemaTooNew, match="schema version 9999"):
        StateStore(path)


def test_a_file_that_is_not_duckdb_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    path.write_text("not a database" * 100)
    with pytest.raises(ConfigError, match=str(path)):
        StateStore(path)


def test_the_store_pickles_for_process_task_runners(store: StateStore) -> None:
    copy = pickle.loads(pickle.dumps(store))
    assert copy.path == store.path and copy.runs() == []


def _open_store(path: str) -> list[int]:
    return StateStore(path).applied_migrations()


def test_migrations_applied_once_by_two_processes_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.duckdb")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_open_store, [path, path])
    expected = [m.version for m in load_migrations()]
    assert results == [expected, expected]


def test_views_answer(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "fail", "failed", message="bad")])
    store.finish_run(run_id, status="failed", counts={"failed": 1})
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        last = con.execute("SELECT run_id, status FROM v_last_run_per_entity").fetchall()
        failed = con.execute("SELECT erp_key, attempts FROM v_failed_records").fetchall()
        history = con.execute("SELECT erp_key, run_status FROM v_record_history").fetchall()
    finally:
        con.close()
    assert last == [(run_id, "failed")]
    assert failed == [("V-1", 1)]
    assert history == [("V-1", "failed")]


# --- runs -------------------------------------------------------------------------------------


def test_run_lifecycle(store: StateStore, clock: FakeClock) -> None:
    cursor = datetime(2026, 1, 1, tzinfo=UTC)
    run_id = store.start_run(
        "vendors", flow_run_id="fr-1", parameters={"full_resync": True}, cursor_before=cursor
    )
    running = store.runs("vendors")[0]
    assert (running.status, running.finished_at, running.started_at) == ("running", None, T0)

    clock.advance(5)
    store.finish_run(
        run_id,
        status="completed",
        counts={"created": 2, "skip": 3, "warnings": 1},
        api_calls=7,
        write_calls=2,
        message="done",
        cursor_after=cursor + timedelta(days=1),
    )
    [run] = store.runs("vendors")
    assert run.run_id == run_id and run.flow_run_id == "fr-1"
    assert run.parameters == {"full_resync": True}
    assert run.status == "completed" and run.message == "done"
    assert run.finished_at == T0 + timedelta(seconds=5)
    assert run.counts == {
        "created": 2, "updated": 0, "unchanged": 3, "failed": 0, "blocked": 0, "warnings": 1
    }
    assert (run.api_calls, run.write_calls) == (7, 2)
    assert (run.cursor_before, run.cursor_after) == (cursor, cursor + timedelta(days=1))


def test_runs_newest_first_filtered_and_limited(store: StateStore, clock: FakeClock) -> None:
    ids = []
    for entity in ["vendors", "projects", "vendors", "vendors"]:
        ids.append((entity, store.start_run(entity)))
        clock.advance()
    vendor_ids = [run_id for entity, run_id in ids if entity == "vendors"]
    assert [r.run_id for r in store.runs("vendors")] == vendor_ids[::-1]
    assert [r.run_id for r in store.runs(limit=2)] == [ids[3][1], ids[2][1]]


def test_runs_started_in_the_same_instant_keep_insertion_order(store: StateStore) -> None:
    first, second = store.start_run("vendors"), store.start_run("vendors")
    assert [r.run_id for r in store.runs("vendors")] == [second, first]


def test_finish_run_refuses_unknown_status_count_and_run(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish_run(run_id, status="running", counts={})
    with pytest.raises(ValueError, match="unknown count 'skipped'"):
        store.finish_run(run_id, status="completed", counts={"skipped": 1})
    with pytest.raises(ValueError, match="no run 'nope'"):
        store.finish_run("nope", status="completed", counts={})
    assert store.runs()[0].status == "running"


# --- record outcomes --------------------------------------------------------------------------


def test_create_then_skip_keeps_hash_and_procore_id(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "create", "ok", 101, "h1")])
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "skip", "ok")])
    state = store.record_states("vendors")["V-1"]
    assert (state.procore_id, state.payload_hash, state.last_action) == (101, "h1", "skip")


def test_fail_keeps_last_pushed_hash_and_counts_attempts(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "create", "ok", 101, "h1")])
    for attempt in (1, 2):
        store.record_outcomes(
            run_id,
            "vendors",
            [Outcome("V-1", "fail", "failed", payload_hash="h2", message=f"422 #{attempt}")],
        )
    state = store.record_states("vendors")["V-1"]
    assert (state.payload_hash, state.procore_id) == ("h1", 101)
    assert (state.status, state.message, state.attempts) == ("failed", "422 #2", 2)
    # The history keeps what each action tried to push and which attempt it was.
    assert [a.attempt for a in store.history(key="V-1")] == [2, 1, 1]


def test_blocked_counts_attempts_and_success_resets_them(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "blocked", "blocked", message="no project")])
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "fail", "failed", message="422")])
    assert store.record_states("vendors")["V-1"].attempts == 2
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "update", "warning", 7, "h3", "cut")])
    state = store.record_states("vendors")["V-1"]
    assert (state.attempts, state.status, state.payload_hash, state.message) == (0, "warning", "h3", "cut")
    assert store.history(key="V-1")[0].attempt == 3


def test_skip_of_a_parked_failure_keeps_its_attempts(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "fail", "failed", message="422")])
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "skip", "failed", message="422")])
    state = store.record_states("vendors")["V-1"]
    assert (state.status, state.attempts) == ("failed", 1)


def _tried_hashes(store: StateStore, key: str) -> list[str | None]:
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        rows = con.execute("SELECT payload_hash FROM record_actions WHERE erp_key = ? ORDER BY action_id", [key])
        return [row[0] for row in rows.fetchall()]
    finally:
        con.close()


def test_a_refused_hash_is_kept_beside_the_landed_one_until_another_outcome(store: StateStore) -> None:
    run_id = store.start_run("vendors")

    def record(outcome: Outcome) -> tuple[str | None, str | None, str]:
        store.record_outcomes(run_id, "vendors", [outcome])
        state = StateStore(store.path).record_states("vendors")["V-1"]  # read back from the file
        return state.payload_hash, state.rejected_hash, state.status

    assert record(Outcome("V-1", "create", "ok", 101, "h1")) == ("h1", None, "ok")
    assert record(Outcome("V-1", "fail", "failed", message="422", rejected_hash="h2")) == ("h1", "h2", "failed")
    assert record(Outcome("V-1", "skip", "failed", message="422")) == ("h1", "h2", "failed")
    # Not a refusal (a batch Procore did not confirm): forgotten, so the next run sends it again.
    assert record(Outcome("V-1", "fail", "failed", message="not confirmed")) == ("h1", None, "failed")
    assert record(Outcome("V-1", "fail", "failed", message="422", rejected_hash="h2")) == ("h1", "h2", "failed")
    assert record(Outcome("V-1", "update", "ok", 101, "h3")) == ("h3", None, "ok")
    # The history says which payload each attempt tried, the refused one included.
    assert _tried_hashes(store, "V-1") == ["h1", "h2", None, None, "h2", "h3"]


def test_only_a_failed_outcome_carries_a_refused_hash() -> None:
    with pytest.raises(ValueError, match="only a failed outcome has a rejected_hash"):
        Outcome("V-1", "create", "ok", 101, "h1", rejected_hash="h1")


def test_migration_0005_keeps_the_rows_of_an_older_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    monkeypatch.setattr(state_module, "load_migrations", lambda: [m for m in load_migrations() if m.version < 5])
    StateStore(path)  # a file as procore-sync left it before 0005, with a row written then
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO record_state (entity, erp_key, procore_id, payload_hash, status, updated_at)"
                " VALUES ('vendors', 'V-1', '101', 'h1', 'ok', now())")
    con.close()
    monkeypatch.undo()
    store = StateStore(path)
    assert 5 in store.applied_migrations()
    state = store.record_states("vendors")["V-1"]
    assert (state.procore_id, state.payload_hash, state.rejected_hash) == (101, "h1", None)
    store.record_outcomes(store.start_run("vendors"), "vendors",
                          [Outcome("V-1", "fail", "failed", message="422", rejected_hash="h2")])
    assert store.record_states("vendors")["V-1"].rejected_hash == "h2"


def test_record_state_fields_and_key_filter(store: StateStore, clock: FakeClock) -> None:
    source_time = datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-5)))
    run_id = store.start_run("vendors")
    clock.advance(60)
    store.record_outcomes(
        run_id,
        "vendors",
        [
            Outcome("V-1", "create", "ok", 1, "a", source_updated_at=source_time),
            Outcome("V-2", "create", "ok", 2, "b"),
        ],
    )
    store.record_outcomes(store.start_run("projects"), "projects", [Outcome("V-1", "create", "ok")])
    states = store.record_states("vendors", ["V-1", "V-404"])
    assert list(states) == ["V-1"]
    state = states["V-1"]
    assert state.entity == "vendors" and state.last_run_id == run_id
    assert state.source_updated_at == source_time and state.source_updated_at.tzinfo is UTC
    assert state.updated_at == T0 + timedelta(seconds=60)
    assert store.record_states("vendors", []) == {}
    assert set(store.record_states("vendors")) == {"V-1", "V-2"}


def test_duplicate_keys_in_one_batch_all_land_in_history(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(
        run_id,
        "vendors",
        [
            Outcome("V-1", "fail", "failed", message="duplicate key, first row"),
            Outcome("V-1", "fail", "failed", message="duplicate key, second row"),
        ],
    )
    assert len(store.history(key="V-1")) == 2
    assert store.record_states("vendors")["V-1"].message == "duplicate key, second row"


def test_record_outcomes_is_one_transaction(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "create", "ok", 1, "h1")])
    with pytest.raises(ValueError, match="no run"):
        store.record_outcomes("missing-run", "vendors", [Outcome("V-1", "update", "ok", 1, "h2")])
    assert store.record_states("vendors")["V-1"].payload_hash == "h1"
    assert len(store.history()) == 1


def test_outcome_rejects_inconsistent_action_and_status() -> None:
    with pytest.raises(ValueError, match="cannot have status"):
        Outcome("V-1", "create", "failed")
    with pytest.raises(ValueError, match="timezone-aware"):
        Outcome("V-1", "create", "ok", source_updated_at=datetime(2026, 1, 1))


def test_ten_thousand_outcomes_are_fast(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    outcomes = [Outcome(f"V-{i:05d}", "create", "ok", i, f"h{i}") for i in range(10_000)]
    started = time.perf_counter()
    store.record_outcomes(run_id, "vendors", outcomes)
    elapsed = time.perf_counter() - started
    assert store.counts_by_status("vendors")["ok"] == 10_000
    assert elapsed < 2.0, f"10,000 outcomes took {elapsed:.2f} s"


def test_counts_by_status(store: StateStore) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(
        run_id,
        "vendors",
        [
            Outcome("V-1", "create", "ok"),
            Outcome("V-2", "update", "warning"),
            Outcome("V-3", "fail", "failed"),
            Outcome("V-4", "fail", "failed"),
        ],
    )
    assert store.counts_by_status("vendors") == {"ok": 1, "warning": 1, "failed": 2, "blocked": 0}
    assert store.counts_by_status("projects") == {"ok": 0, "warning": 0, "failed": 0, "blocked": 0}


# --- history ----------------------------------------------------------------------------------


def test_history_filters_and_order(store: StateStore, clock: FakeClock) -> None:
    vendors_run = store.start_run("vendors")
    store.record_outcomes(vendors_run, "vendors", [Outcome("V-1", "create", "ok", 1)])
    clock.advance(10)
    store.record_outcomes(
        vendors_run, "vendors", [Outcome("V-2", "fail", "failed"), Outcome("V-1", "skip", "ok")]
    )
    clock.advance(10)
    projects_run = store.start_run("projects")
    store.record_outcomes(projects_run, "projects", [Outcome("P-1", "fail", "failed", message="x")])

    def keys(rows: list[ActionRow]) -> list[tuple[str, str]]:
        return [(row.entity, row.key) for row in rows]

    assert keys(store.history()) == [
        ("projects", "P-1"), ("vendors", "V-1"), ("vendors", "V-2"), ("vendors", "V-1")
    ]
    assert keys(store.history(entity="vendors", key="V-1")) == [("vendors", "V-1")] * 2
    assert keys(store.history(status="failed")) == [("projects", "P-1"), ("vendors", "V-2")]
    assert keys(store.history(since=T0 + timedelta(seconds=10))) == keys(store.history())[:3]
    assert keys(store.history(limit=1)) == [("projects", "P-1")]
    newest = store.history(limit=1)[0]
    assert newest.run_id == projects_run and newest.message == "x" and newest.at == clock.now


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.set_cursor("vendors", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.history(since=datetime(2026, 1, 1))


# --- cursors ----------------------------------------------------------------------------------


def test_cursor_round_trip_is_tz_aware_utc(store: StateStore) -> None:
    assert store.get_cursor("vendors") is None
    toronto_morning = datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    store.set_cursor("vendors", toronto_morning)
    value = store.get_cursor("vendors")
    assert value == toronto_morning and value.tzinfo is UTC and value.hour == 13
    store.set_cursor("vendors", toronto_morning + timedelta(hours=1))
    assert store.get_cursor("vendors") == toronto_morning + timedelta(hours=1)
    assert store.get_cursor("projects") is None


# --- several processes ------------------------------------------------------------------------

WORKERS, RUNS_PER_WORKER, OUTCOMES_PER_RUN = 4, 20, 20


def _write_runs(path: str, worker: int) -> int:
    """One flow-run process: runs of start, (read state,) record a batch of outcomes, finish."""
    store = StateStore(path)
    for n in range(RUNS_PER_WORKER):
        run_id = store.start_run(f"entity-{worker}", parameters={"n": n})
        outcomes = [
            Outcome(f"K-{n:03d}-{i:03d}", "create", "ok", i, f"h{i}") for i in range(OUTCOMES_PER_RUN)
        ]
        if n % 5 == 0:
            # Read before writing, as the planner does: read-only opens meet the writers' locks
            # too. Every fifth run only, to keep the test quick (each open costs ~15 ms).
            assert store.record_states(f"entity-{worker}", [o.key for o in outcomes]) == {}
        store.record_outcomes(run_id, f"entity-{worker}", outcomes)
        store.finish_run(run_id, status="completed", counts={"created": OUTCOMES_PER_RUN})
    return worker


def test_four_processes_write_concurrently(tmp_path: Path) -> None:
    path = str(tmp_path / "state.duckdb")
    StateStore(path)
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        # .get() re-raises any exception a worker raised.
        done = pool.starmap_async(_write_runs, [(path, w) for w in range(WORKERS)]).get(timeout=120)
    assert sorted(done) == list(range(WORKERS))

    store = StateStore(path)
    total_runs = WORKERS * RUNS_PER_WORKER
    runs = store.runs(limit=10 * total_runs)
    assert len(runs) == total_runs
    assert all(run.status == "completed" for run in runs)
    assert len(store.history(limit=10 * total_runs * OUTCOMES_PER_RUN)) == total_runs * OUTCOMES_PER_RUN
    for worker in range(WORKERS):
        counts = store.counts_by_status(f"entity-{worker}")
        assert counts["ok"] == RUNS_PER_WORKER * OUTCOMES_PER_RUN


def test_threads_of_one_process_write_concurrently(store: StateStore) -> None:
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for n in range(3):
                run_id = store.start_run("vendors")
                outcomes = [Outcome(f"T{thread}-{n}-{i}", "create", "ok") for i in range(10)]
                store.record_outcomes(run_id, "vendors", outcomes)
        except BaseException as exc:  # collected: an assertion in a thread would go unseen
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.counts_by_status("vendors")["ok"] == 3 * 3 * 10


def test_waiting_on_another_procore_sync_process_is_bounded(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    impatient = StateStore(tmp_path / "state.duckdb", lock_timeout_s=0.05)
    # What another procore-sync process holds while it writes: the queue lock beside the file.
    with open(f"{impatient.path}.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with pytest.raises(StateStoreBusy, match="another procore-sync process"):
            impatient.get_cursor("vendors")
    assert impatient.get_cursor("vendors") is None


def _hold_lock(
    path: str, held: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    con = duckdb.connect(path)
    held.set()
    release.wait(30)
    con.close()


@pytest.fixture
def foreign_lock(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """Another process holding the state file open read-write, until released."""
    path = tmp_path / "state.duckdb"
    StateStore(path)
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), held, release))
    holder.start()
    assert held.wait(30)
    yield path, release.set
    release.set()
    holder.join(30)


def test_lock_held_too_long_names_the_file_then_waiting_succeeds(
    foreign_lock: tuple[Path, Callable[[], None]],
) -> None:
    path, release = foreign_lock
    with pytest.raises(StateStoreBusy, match=str(path)):
        StateStore(path, lock_timeout_s=0.2)
    release()
    store = StateStore(path, lock_timeout_s=30)
    assert store.get_cursor("vendors") is None


def test_an_operation_that_fails_lets_the_file_go(tmp_path: Path) -> None:
    """Operations attach the file to the process's DuckDB instance and detach it after, also
    when they raise: a connection of its own (another process, a DuckDB CLI) opens it then."""
    store = StateStore(tmp_path / "state.duckdb")
    with pytest.raises(ValueError, match="no run"):
        store.finish_run("no-such-run", status="completed", counts={})
    with pytest.raises(duckdb.CatalogException):
        with store._connect(write=False) as con:
            con.execute("SELECT * FROM no_such_table")
    duckdb.connect(str(store.path)).close()  # refused while the process's instance holds it
    assert store.get_cursor("vendors") is None
