"""The state store: its API rules, its migrations and several processes writing at once, on
both backends: a DuckDB file and a PostgreSQL database (a fresh schema of the session's cluster
per test, ``state_postgres`` in conftest.py)."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.managers
import multiprocessing.pool
import multiprocessing.synchronize
import pickle
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import psycopg
import pytest

from connectors import state as state_module
from connectors.erp import DuckDbErpSource
from connectors.postgres_db import close_pools, numbered
from connectors.state import (
    ActionRow,
    Migration,
    Outcome,
    Pairing,
    StateSchemaTooNew,
    StateStore,
    StateStoreBusy,
    WebhookEvent,
    load_migrations,
)
from procore_sync.errors import ConfigError
from tests.conftest import StatePostgres

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


class Backend:
    """Where a test's state lives, and a connection of the test's own to look at it beside the
    store (as an operator's SQL client would)."""

    def __init__(self, name: str, location: str) -> None:
        self.name, self.location = name, location
        # The engine's own errors, as the store lets them through.
        self.error: type[Exception] = duckdb.Error if name == "duckdb" else psycopg.Error
        self.no_such_table: type[Exception] = (duckdb.CatalogException if name == "duckdb"
                                               else psycopg.errors.UndefinedTable)

    def open(self, **kwargs: object) -> StateStore:
        return StateStore(self.location, **kwargs)  # type: ignore[arg-type]

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple]:
        if self.name == "duckdb":
            con = duckdb.connect(self.location, read_only=True)
            try:
                return con.execute(sql, params or []).fetchall()
            finally:
                con.close()
        with psycopg.connect(self.location, cursor_factory=psycopg.RawCursor) as con:
            return con.execute(numbered(sql), params).fetchall()

    def execute(self, sql: str) -> None:
        if self.name == "duckdb":
            con = duckdb.connect(self.location)
            try:
                con.execute(sql)
            finally:
                con.close()
            return
        with psycopg.connect(self.location, autocommit=True) as con:
            con.execute(sql)


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "duckdb":
        yield Backend("duckdb", str(tmp_path / "nested" / "state.duckdb"))
        return
    postgres: StatePostgres = request.getfixturevalue("state_postgres")
    url = postgres.fresh_url()
    yield Backend("postgresql", url)
    close_pools(url)  # the pools of the session's stores would outnumber the server's connections


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> StateStore:
    return backend.open(clock=clock)


# --- migrations -------------------------------------------------------------------------------


def test_creates_parent_dirs_and_applies_every_migration(store: StateStore, backend: Backend) -> None:
    if backend.name == "duckdb":
        assert store.path is not None and store.path.exists()
    assert store.backend == backend.name
    assert store.applied_migrations() == [m.version for m in load_migrations()]


def test_migrations_applied_once_when_opened_twice(backend: Backend) -> None:
    backend.open()
    backend.open()
    rows = backend.query("SELECT version, count(*) FROM schema_migrations GROUP BY version")
    assert sorted(rows) == [(m.version, 1) for m in load_migrations()]


def test_a_failing_migration_leaves_nothing_behind(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Migration(99, "0099_broken.sql", "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();")
    monkeypatch.setattr(state_module, "load_migrations", lambda: [*load_migrations(), broken])
    with pytest.raises(backend.error):
        backend.open()
    monkeypatch.undo()
    store = backend.open()
    assert 99 not in store.applied_migrations()
    assert backend.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'") == [(0,)]


def test_a_state_from_a_newer_version_is_refused(backend: Backend) -> None:
    backend.open()
    backend.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', now())")
    with pytest.raises(StateSchemaTooNew, match="schema version 9999"):
        backend.open()


def test_a_location_that_holds_no_state_database_is_a_config_error(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "duckdb":
        path = tmp_path / "state.duckdb"
        path.write_text("not a database" * 100)
        location = str(path)
    else:  # a database that does not exist on the server
        location = re.sub(r"/\w+\?", "/no_such_database?", backend.location, count=1)
    with pytest.raises(ConfigError, match=re.escape(location)):
        StateStore(location)


def test_a_password_never_shows_in_what_the_store_says(state_postgres: StatePostgres) -> None:
    url = state_postgres.fresh_url().replace("postgres@", "postgres:s3cret-pw@")  # trust: any password
    store = StateStore(url)
    assert "s3cret-pw" not in repr(store) and "s3cret-pw" not in store.location
    assert store.runs() == []
    close_pools(url)


def test_the_store_pickles_for_process_task_runners(store: StateStore) -> None:
    copy = pickle.loads(pickle.dumps(store))
    assert copy.location == store.location and copy.runs() == []


@dataclass
class Processes:
    """Processes like flow runs' (spawned, as Prefect's are), kept for the module: starting and
    importing them costs seconds, the tests' work in them a fraction of that."""

    pool: multiprocessing.pool.Pool
    manager: multiprocessing.managers.SyncManager


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(WORKERS) as pool:
        yield Processes(pool, manager)


def _open_store(location: str, start: threading.Event) -> list[int]:
    start.wait(30)
    store = StateStore(location)
    applied = store.applied_migrations()
    store.close()
    return applied


def test_migrations_applied_once_by_two_processes_at_once(backend: Backend, processes: Processes) -> None:
    start = processes.manager.Event()
    done = processes.pool.starmap_async(_open_store, [(backend.location, start)] * 2)
    start.set()
    results = done.get(timeout=120)
    expected = [m.version for m in load_migrations()]
    assert results == [expected, expected]
    rows = backend.query("SELECT version, count(*) FROM schema_migrations GROUP BY version")
    assert sorted(rows) == [(m.version, 1) for m in load_migrations()]


def test_views_answer(store: StateStore, backend: Backend) -> None:
    run_id = store.start_run("vendors")
    store.record_outcomes(run_id, "vendors", [Outcome("V-1", "fail", "failed", message="bad")])
    store.finish_run(run_id, status="failed", counts={"failed": 1})
    assert backend.query("SELECT run_id, status FROM v_last_run_per_entity") == [(run_id, "failed")]
    assert backend.query("SELECT erp_key, attempts FROM v_failed_records") == [("V-1", 1)]
    assert backend.query("SELECT erp_key, run_status FROM v_record_history") == [("V-1", "failed")]


def test_the_last_run_view_takes_the_newest_run_of_each_entity(store: StateStore, backend: Backend,
                                                               clock: FakeClock) -> None:
    store.start_run("vendors")
    clock.advance()
    store.start_run("vendors")
    other = store.start_run("projects")
    same_instant = store.start_run("vendors")  # started with the one before: the later insert wins
    rows = backend.query("SELECT entity, run_id FROM v_last_run_per_entity ORDER BY entity")
    assert rows == [("projects", other), ("vendors", same_instant)]


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


def _tried_hashes(backend: Backend, key: str) -> list[str | None]:
    rows = backend.query("SELECT payload_hash FROM record_actions WHERE erp_key = ? ORDER BY action_id", [key])
    return [row[0] for row in rows]


def test_a_refused_hash_is_kept_beside_the_landed_one_until_another_outcome(store: StateStore,
                                                                            backend: Backend) -> None:
    run_id = store.start_run("vendors")

    def record(outcome: Outcome) -> tuple[str | None, str | None, str]:
        store.record_outcomes(run_id, "vendors", [outcome])
        state = backend.open().record_states("vendors")["V-1"]  # read back by another store
        return state.payload_hash, state.rejected_hash, state.status

    assert record(Outcome("V-1", "create", "ok", 101, "h1")) == ("h1", None, "ok")
    assert record(Outcome("V-1", "fail", "failed", message="422", rejected_hash="h2")) == ("h1", "h2", "failed")
    assert record(Outcome("V-1", "skip", "failed", message="422")) == ("h1", "h2", "failed")
    # Not a refusal (a batch Procore did not confirm): forgotten, so the next run sends it again.
    assert record(Outcome("V-1", "fail", "failed", message="not confirmed")) == ("h1", None, "failed")
    assert record(Outcome("V-1", "fail", "failed", message="422", rejected_hash="h2")) == ("h1", "h2", "failed")
    assert record(Outcome("V-1", "update", "ok", 101, "h3")) == ("h3", None, "ok")
    # The history says which payload each attempt tried, the refused one included.
    assert _tried_hashes(backend, "V-1") == ["h1", "h2", None, None, "h2", "h3"]


def test_only_a_failed_outcome_carries_a_refused_hash() -> None:
    with pytest.raises(ValueError, match="only a failed outcome has a rejected_hash"):
        Outcome("V-1", "create", "ok", 101, "h1", rejected_hash="h1")


def test_migration_0005_keeps_the_rows_of_an_older_state(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "load_migrations", lambda: [m for m in load_migrations() if m.version < 5])
    backend.open()  # a state as procore-sync left it before 0005, with a row written then
    backend.execute("INSERT INTO record_state (entity, erp_key, procore_id, payload_hash, status, updated_at)"
                    " VALUES ('vendors', 'V-1', '101', 'h1', 'ok', now())")
    monkeypatch.undo()
    store = backend.open()
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


# --- accepted uploads (migration 0010) --------------------------------------------------------


def test_an_accepted_upload_is_kept_whole_and_sent_only_when_it_changed(store: StateStore, clock: FakeClock) -> None:
    assert store.accepted_upload("suppliers") is None
    content = "supplier_code\nS-1\n".encode("utf-16")  # bytes as uploaded, BOM and all
    first = store.keep_upload("suppliers", content, source="suppliers.csv from folder drop")
    found = store.accepted_upload("suppliers")
    assert found is not None and (found.content, found.accepted_at, found.source) == (
        content, first, "suppliers.csv from folder drop")
    assert store.accepted_upload("suppliers", unless_at=first).content is None  # type: ignore[union-attr]
    clock.advance()
    store.keep_upload("suppliers", b"older copy", source="a host's file", unless_kept=True)
    assert store.accepted_upload("suppliers", unless_at=first).content is None, "kept: not replaced"  # type: ignore[union-attr]
    second = store.keep_upload("suppliers", b"supplier_code\nS-2\n", source="the next upload")
    assert second > first
    assert store.accepted_upload("suppliers", unless_at=first).content == b"supplier_code\nS-2\n"  # type: ignore[union-attr]


def test_a_held_lock_needs_a_shared_state(store: StateStore, backend: Backend) -> None:
    if backend.name == "duckdb":
        with pytest.raises(ValueError, match="needs a state on PostgreSQL"):
            store.hold("uploads/suppliers")
        return
    held = store.hold("uploads/suppliers")
    assert held is not None and store.hold("uploads/suppliers") is None
    held.close()
    assert store.hold("uploads/suppliers") is not None, "given back on close"


# --- several processes ------------------------------------------------------------------------

WORKERS, RUNS_PER_WORKER, OUTCOMES_PER_RUN = 4, 20, 20


def _write_runs(location: str, worker: int) -> int:
    """One flow-run process: runs of start, (read state,) record a batch of outcomes, finish."""
    store = StateStore(location)
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
    store.close()
    return worker


def test_four_processes_write_concurrently(backend: Backend, processes: Processes) -> None:
    backend.open()
    # .get() re-raises any exception a worker raised.
    done = processes.pool.starmap_async(_write_runs, [(backend.location, w) for w in range(WORKERS)]).get(timeout=120)
    assert sorted(done) == list(range(WORKERS))

    store = backend.open()
    total_runs = WORKERS * RUNS_PER_WORKER
    runs = store.runs(limit=10 * total_runs)
    assert len(runs) == total_runs
    assert all(run.status == "completed" for run in runs)
    assert len(store.history(limit=10 * total_runs * OUTCOMES_PER_RUN)) == total_runs * OUTCOMES_PER_RUN
    for worker in range(WORKERS):
        counts = store.counts_by_status(f"entity-{worker}")
        assert counts["ok"] == RUNS_PER_WORKER * OUTCOMES_PER_RUN


FAILING_BATCHES, SHARED_KEYS = 15, 10


def _fail_the_same_records(location: str, start: threading.Event) -> None:
    """Batches failing the same records of one entity: each derives its attempts from the state
    before it, so two merged at once would count one attempt where there were two."""
    store = StateStore(location)
    run_id = store.start_run("vendors")
    start.wait(30)
    for n in range(FAILING_BATCHES):
        store.record_outcomes(run_id, "vendors", [Outcome(f"V-{k}", "fail", "failed", message=f"422 #{n}")
                                                  for k in range(SHARED_KEYS)])
    store.close()


def test_processes_failing_the_same_records_count_every_attempt(backend: Backend, processes: Processes) -> None:
    """What the file's turns give on DuckDB, and the entity's advisory lock on PostgreSQL (one
    merge of an entity's records at a time, on every host): no attempt lost."""
    backend.open()
    start = processes.manager.Event()  # all at once, once every process has opened its store
    done = processes.pool.starmap_async(_fail_the_same_records, [(backend.location, start)] * WORKERS)
    start.set()
    done.get(timeout=120)
    states = backend.open().record_states("vendors")
    assert {state.attempts for state in states.values()} == {WORKERS * FAILING_BATCHES}
    assert backend.query("SELECT max(attempt) FROM record_actions") == [(WORKERS * FAILING_BATCHES,)]


def _pair_first(location: str, worker: int, start: threading.Event) -> int:
    """A run's first pairing, each with another company: the one in force afterwards."""
    store = StateStore(location)
    start.wait(30)
    in_force = store.pair(Pairing("https://api.example", worker + 1, "erp"), how="first run", only_if_unpaired=True)
    store.close()
    return in_force.pairing.company_id


def test_the_first_pairing_is_made_once_when_runs_start_together(backend: Backend, processes: Processes) -> None:
    backend.open()
    start = processes.manager.Event()
    done = processes.pool.starmap_async(_pair_first, [(backend.location, w, start) for w in range(WORKERS)])
    start.set()
    in_force = done.get(timeout=120)
    assert backend.query("SELECT count(*) FROM pairings") == [(1,)]
    assert len(set(in_force)) == 1  # every run sees the one pairing made
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


def test_a_thread_reading_the_erps_columns_never_fails_a_state_write(tmp_path: Path) -> None:
    """sync-all's entity runs share one process: one reads the ERP's columns (``duckdb_columns()``
    looks into every file the process has open), another writes the state file. The scan held
    the state file past its writer's DETACH, and the next ATTACH of it was refused ("Unique file
    handle conflict"), failing the demo's prime_contracts run with a ConfigError."""
    erp_path = tmp_path / "erp.duckdb"
    with duckdb.connect(str(erp_path)) as con:
        con.execute("CREATE TABLE vendors (code VARCHAR)")
    erp, store = DuckDbErpSource(erp_path), StateStore(tmp_path / "state.duckdb")
    errors: list[BaseException] = []
    done = threading.Event()

    def read_erp() -> None:
        while not done.is_set():
            try:
                erp.key_values("vendors", "code")
            except BaseException as exc:  # collected: an assertion in a thread would go unseen
                errors.append(exc)

    reader = threading.Thread(target=read_erp)
    reader.start()
    try:
        for n in range(300):
            try:
                store.set_cursor(f"entity-{n % 7}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n))
            except BaseException as exc:
                errors.append(exc)
    finally:
        done.set()
        reader.join()
    assert errors == [], f"{len(errors)} operations failed, the first: {errors[0]!r}"


def test_waiting_on_another_procore_sync_process_is_bounded_duckdb(tmp_path: Path) -> None:
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


def test_lock_held_too_long_names_the_file_then_waiting_succeeds_duckdb(
    foreign_lock: tuple[Path, Callable[[], None]],
) -> None:
    path, release = foreign_lock
    with pytest.raises(StateStoreBusy, match=str(path)):
        StateStore(path, lock_timeout_s=0.2)
    release()
    store = StateStore(path, lock_timeout_s=30)
    assert store.get_cursor("vendors") is None


def _advisory_key(name: str) -> str:
    return f"hashtextextended(current_schema() || '/' || '{name}', 0)"


def test_a_merge_waits_for_its_entity_only_and_boundedly_postgresql(state_postgres: StatePostgres) -> None:
    """Another host merging vendors holds the vendors lock: a merge of vendors waits for it, at
    most lock_timeout_s, and says so; a merge of projects goes on meanwhile."""
    url = state_postgres.fresh_url()
    impatient = StateStore(url, lock_timeout_s=0.2)
    run_id = impatient.start_run("vendors")
    with psycopg.connect(url, autocommit=True) as other:
        other.execute(f"SELECT pg_advisory_lock({_advisory_key('record_state/vendors')})")
        with pytest.raises(StateStoreBusy, match=re.escape(impatient.location)):
            impatient.record_outcomes(run_id, "vendors", [Outcome("V-1", "create", "ok", 1)])
        impatient.record_outcomes(run_id, "projects", [Outcome("P-1", "create", "ok", 1)])
        other.execute(f"SELECT pg_advisory_unlock({_advisory_key('record_state/vendors')})")
    impatient.record_outcomes(run_id, "vendors", [Outcome("V-1", "create", "ok", 1)])
    assert set(impatient.record_states("vendors")) == {"V-1"} and set(impatient.record_states("projects")) == {"P-1"}
    # The first pairing likewise: made by one run at a time.
    with psycopg.connect(url, autocommit=True) as other:
        other.execute(f"SELECT pg_advisory_lock({_advisory_key('pairings')})")
        with pytest.raises(StateStoreBusy):
            impatient.pair(Pairing("https://api.example", 1, "erp"), how="first run", only_if_unpaired=True)
    assert impatient.pairing() is None
    close_pools(url)


def test_a_client_holding_a_lock_too_long_makes_writes_busy_then_waiting_succeeds_postgresql(
    state_postgres: StatePostgres,
) -> None:
    """The PostgreSQL counterpart of a DuckDB CLI left open on the file: a SQL client's
    transaction holding the runs table."""
    url = state_postgres.fresh_url()
    store = StateStore(url, lock_timeout_s=0.2)
    with psycopg.connect(url) as client:
        client.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
        with pytest.raises(StateStoreBusy, match="another transaction held a lock"):
            store.start_run("vendors")
        client.rollback()
    assert [r.entity for r in (store.runs())] == []
    store.start_run("vendors")
    assert [r.entity for r in store.runs()] == ["vendors"]
    close_pools(url)


def test_an_operation_that_fails_lets_the_state_go(store: StateStore, backend: Backend) -> None:
    """Operations give the file or the connection back also when they raise: on DuckDB the
    process's instance detaches the file, so a connection of its own (another process, a DuckDB
    CLI) opens it then; on PostgreSQL the transaction is rolled back and the pool's connections
    stay usable, none left idle in a transaction."""
    for _ in range(12):  # more than the pool's connections
        with pytest.raises(ValueError, match="no run"):
            store.finish_run("no-such-run", status="completed", counts={})
    with pytest.raises(backend.no_such_table):
        with store._connect(write=False) as con:
            con.execute("SELECT * FROM no_such_table")
    if backend.name == "duckdb":
        duckdb.connect(backend.location).close()  # refused while the process's instance holds it
    else:
        stuck = backend.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                              " AND state LIKE 'idle in transaction%'")
        assert stuck == [(0,)]
    assert store.get_cursor("vendors") is None


# --- state migrate: a DuckDB state copied into PostgreSQL -------------------------------------


def _every_row(backend: Backend) -> dict[str, list[tuple]]:
    """Every state table's rows, in one order, as both engines hand them (timestamps in UTC)."""
    tables = {"runs": "seq", "record_state": "entity, erp_key", "record_actions": "action_id", "cursors": "entity",
              "pairings": "seq", "webhook_events": "event_key"}
    rows = {}
    for table, order in tables.items():
        found = backend.query(f"SELECT * FROM {table} ORDER BY {order}")
        rows[table] = [tuple(_comparable(v) for v in row) for row in found]
    return rows


def _comparable(value: object) -> object:
    """JSON columns come back as text from DuckDB and parsed from psycopg: parsed, both."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)
    return value


def _populated(store: StateStore, clock: FakeClock) -> None:
    """A state with something in every table: runs finished and crashed, records of each status,
    history, a cursor, a pairing, webhook events."""
    first = store.start_run("vendors", flow_run_id="fr-1", parameters={"full_resync": True}, process='{"pid": 1}')
    store.record_outcomes(first, "vendors", [
        Outcome("V-1", "create", "ok", 101, "h1", source_updated_at=T0),
        Outcome("V-2", "fail", "failed", message="422", rejected_hash="h2", outside=False),
        Outcome("V-3", "blocked", "blocked", message="no parent", parent_failed=True),
        Outcome("R-1", "create", "ok", "3f0c8a4e-uuid", "h4"),
    ])
    clock.advance(5)
    store.finish_run(first, status="completed", counts={"created": 2, "failed": 1, "blocked": 1}, api_calls=3,
                     cursor_after=T0)
    store.mark_crashed(store.start_run("projects"), "process gone")
    store.set_cursor("vendors", T0)
    store.pair(Pairing("https://api.example", 7, "erp file"), how="first run")
    store.add_webhook_event(WebhookEvent("01HX", T0, "Projects", "update", "42", None, {"id": 42, "note": "ü"}))
    store.settle_webhook_events(["01HX"], "started", entity="projects", flow_run_id="fr-2")


def test_state_migrate_copies_a_duckdb_state_into_postgresql(tmp_path: Path, state_postgres: StatePostgres,
                                                             clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    source = Backend("duckdb", str(tmp_path / "state.duckdb"))
    _populated(source.open(clock=clock), clock)
    target = Backend("postgresql", state_postgres.fresh_url())
    monkeypatch.setenv("PROCORE_SYNC_STATE_PATH", source.location)
    runner = CliRunner()

    copied = runner.invoke(app, ["state", "migrate", "--to", target.location])
    assert copied.exit_code == 0, copied.output
    expected = _every_row(source)
    assert _every_row(target) == expected
    for table, rows in expected.items():  # what it says it copied
        assert re.search(rf"{table}\s*│\s*{len(rows)}\s", copied.output), copied.output
    assert all(expected.values())  # every table had rows to copy

    # The copy goes on where the file left off: new runs and actions sort after the copied ones.
    store = target.open(clock=clock)
    clock.advance(60)
    newest = store.start_run("vendors")
    store.record_outcomes(newest, "vendors", [Outcome("V-2", "update", "ok", 102, "h5")])
    assert store.runs("vendors")[0].run_id == newest and store.history(limit=1)[0].run_id == newest
    assert store.record_states("vendors")["V-2"].attempts == 0 and store.pairing().pairing.company_id == 7
    assert target.query("SELECT max(seq) FROM runs WHERE run_id = ?", [newest]) == [(len(expected["runs"]) + 1,)]
    assert target.query("SELECT count(DISTINCT action_id), count(*) FROM record_actions") == [(5, 5)]

    refused = runner.invoke(app, ["state", "migrate", "--to", target.location])
    assert refused.exit_code == 2 and "is not empty" in refused.output and "--replace" in refused.output
    assert len(store.runs("vendors")) == 2  # nothing copied over it

    replaced = runner.invoke(app, ["state", "migrate", "--to", target.location, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert _every_row(target) == expected
    close_pools(target.location)
