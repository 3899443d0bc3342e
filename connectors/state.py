"""The sync state store: runs, per-record state, action history and cursors, in one DuckDB file
or one PostgreSQL database.

Everything the engine remembers between runs goes through this module's narrow API; there is no
SQL anywhere else. The schema is a list of numbered migrations (``connectors/migrations``)
applied once each, in a transaction, and tracked in ``schema_migrations``.

Per-record facts are rows keyed by (entity, ERP key) carrying the hash of the last payload
actually pushed to Procore, so the planner can tell "unchanged" without a call, and the hash of
the payload Procore last refused, so an unchanged refused record is not sent again either. Every
action on a record is also appended to ``record_actions``: the history the operator reads.

Two backends, one store: the location decides. A path is a DuckDB file (the embedded default,
one host); a ``postgresql://`` URL (``PROCORE_SYNC_STATE_URL``; ``StateStore.open(settings)``) is
a database that workers on many hosts share. Both run the same migrations, views and statements;
the few statements the engines do not share are in ``_DIALECT``, by name.

Concurrency: several Prefect flow runs (separate processes, and threads within sync-all) write
at once. On DuckDB every operation takes its turn at the file through ``connectors/duckdb_file.py``
(short-lived connections, queued on locks, ``StateStoreBusy`` after ``lock_timeout_s``): one
operation at a time, each one transaction, so an operation that reads before it writes sees no
other writer in between. On PostgreSQL (``connectors/postgres_db.py``) operations run at once,
each one transaction, and those that read before they write take a transaction-scoped advisory
lock on what they read, so they keep the guarantee the turn gave:

- ``record_outcomes`` on the entity: attempts, kept hashes and Procore ids are derived from the
  record's state before the batch, so two batches of one entity are merged one after the other
  (two hosts never merge the same record at once; other entities go on meanwhile);
- ``pair(only_if_unpaired=True)`` on the pairings: sync-all's first runs start together and
  exactly one records the first pairing;
- ``add_webhook_event`` on the event's key: a delivery sent twice to two receivers is one row;
- the migrations on a session lock: two hosts starting at once migrate once.

Statements that decide in one step need no lock: ``mark_crashed`` and ``settle_webhook_events``
update only rows still ``running`` or ``pending`` (PostgreSQL re-checks the condition after a
concurrent update, so one wins), ``set_cursor`` is one upsert. What no operation of the store
covers, a run planning its records between reading their state and recording outcomes, is one
run per entity and company at a time on every host: ``connectors/run_lock.py`` (a Prefect global
concurrency limit), on either backend.

Hold time is what matters, hence the bulk paths: a batch of outcomes is handed to the engine as
column lists and merged with set-based SQL in a handful of statements whatever its size (10,000
outcomes in tens of milliseconds on DuckDB; ``executemany`` takes seconds), the same on
PostgreSQL (arrays unnested), never a round trip per record.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from connectors.duckdb_file import DuckDbFile, transaction
from connectors.postgres_db import HeldLock, PostgresDatabase, close_pools, is_postgres_url
from procore_sync.errors import ConfigError, TransientError
from procore_sync.settings import Settings
# The record values live beside the error tree, so the engine uses them without this module.
from procore_sync.records import (ActionKind, Outcome, ParentState, ProcoreId, RecordState, Status,  # noqa: F401
                                  require_aware)

RunStatus = Literal["running", "completed", "failed", "dry_run", "deferred", "crashed"]

COUNT_NAMES: tuple[str, ...] = ("created", "updated", "unchanged", "failed", "blocked", "warnings")
# Callers often count outcomes by action kind (Counter(o.action)); accept those names too.
_COUNT_ALIASES: dict[str, str] = {
    "create": "created",
    "update": "updated",
    "skip": "unchanged",
    "fail": "failed",
    "warning": "warnings",
}
_FINAL_RUN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "dry_run", "deferred"})
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def state_location(settings: Settings) -> Path | str:
    """Where the settings keep the state: ``state_url`` when set, else the file at ``state_path``."""
    return settings.state_url.get_secret_value() if settings.state_url is not None else settings.state_path


def utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    # DuckDB hands back its own tzinfo objects; callers get plain datetime.UTC.
    return value.astimezone(UTC) if value is not None else None


# --- values in and out ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run_id: str
    entity: str
    flow_run_id: str | None
    parameters: dict[str, Any]
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    api_calls: int
    write_calls: int
    message: str | None
    cursor_before: datetime | None
    cursor_after: datetime | None
    # Who ran it (migration 0006; tasks/liveness.py): None for runs recorded before.
    process: str | None = None


@dataclass(frozen=True)
class ActionRow:
    run_id: str
    entity: str
    key: str
    action: str
    status: str
    procore_id: ProcoreId | None
    message: str | None
    attempt: int
    at: datetime


@dataclass(frozen=True)
class Pairing:
    """The Procore environment, company and ERP a state belongs to (migration 0006)."""

    environment: str
    company_id: int
    erp: str

    def describe(self) -> str:
        return f"Procore {self.environment}, company {self.company_id}, ERP {self.erp}"


@dataclass(frozen=True)
class PairingRow:
    pairing: Pairing
    at: datetime
    how: str


@dataclass(frozen=True)
class StateEvent:
    """Something the operator should see in the history besides record actions: a run found
    crashed, a pairing made."""

    at: datetime
    entity: str | None
    what: str
    status: str
    message: str


@dataclass(frozen=True)
class WebhookEvent:
    """One Procore webhook event as received (``payload``) and what became of it (``status``:
    migrations/0008_webhook_events.sql)."""

    event_key: str
    received_at: datetime
    resource_name: str
    event_type: str
    resource_id: str
    project_id: str | None
    payload: dict[str, Any]
    status: str = "pending"
    entity: str | None = None
    flow_run_id: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class AcceptedUpload:
    """A table's accepted upload (migration 0010); ``content`` None when the caller has it already."""

    table: str
    accepted_at: datetime
    source: str
    content: bytes | None


class StateStoreBusy(TransientError):
    """Another process kept the state file locked for longer than the store waits."""

    hint = (
        "another process holds the DuckDB state file. Close any DuckDB CLI, notebook or SQL "
        "client that has it open; flow runs release it within milliseconds."
    )


class StateTargetNotEmpty(ConfigError):
    hint = ("the target database already holds a state: choose an empty database (or schema), or "
            "pass --replace to empty the target's state tables first.")


class StateSchemaTooNew(ConfigError):
    hint = "upgrade procore-sync: the state file was migrated by a newer version."


# --- migrations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)


def load_migrations() -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files shipped in ``connectors/migrations``, in order."""
    folder = resources.files("connectors").joinpath("migrations")
    found: dict[int, Migration] = {}
    for item in folder.iterdir():
        match = _MIGRATION_NAME.match(item.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version:04d}: {item.name}")
        found[version] = Migration(version, item.name, item.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


# --- the store --------------------------------------------------------------------------------


class _DuckDbState:
    """A DuckDB state file as the store uses a database: its turns serialise every write, so
    the names a write would serialise on need no lock of their own."""

    dialect = "duckdb"

    def __init__(self, file: DuckDbFile) -> None:
        self.file = file
        self.location = str(file.path)

    def connect(self, *, write: bool) -> AbstractContextManager[Any]:
        return self.file.connect(write=write)

    def write(self, *serialise: str) -> AbstractContextManager[Any]:
        return self.file.write()

    @contextmanager
    def session_lock(self, con: Any, name: str) -> Iterator[None]:
        yield  # the connection's turn at the file already excludes every other writer


class _PostgresState(PostgresDatabase):
    dialect = "postgresql"


class StateStore:
    """Sync state in one DuckDB file or one PostgreSQL database; safe to use from several
    processes and threads at once (and, on PostgreSQL, hosts)."""

    def __init__(
        self,
        location: Path | str,
        *,
        lock_timeout_s: float = 60.0,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``location``: a DuckDB file's path, or a ``postgresql://`` URL."""
        self._db: _DuckDbState | _PostgresState
        if is_postgres_url(location):
            self._db = _PostgresState(str(location), what="the state database", busy=StateStoreBusy,
                                      lock_timeout_s=lock_timeout_s)
            self.path: Path | None = None
        else:
            file = DuckDbFile(location, what="the state file", busy=StateStoreBusy,
                              lock_timeout_s=lock_timeout_s, sleep=sleep)
            self._db = _DuckDbState(file)
            self.path = file.path
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._migrate()

    @classmethod
    def open(cls, settings: Settings, **kwargs: Any) -> "StateStore":
        """The store the settings name: ``state_url`` when set, else the file at ``state_path``."""
        return cls(state_location(settings), **kwargs)

    @property
    def backend(self) -> str:
        """``duckdb`` or ``postgresql``."""
        return self._db.dialect

    @property
    def location(self) -> str:
        """The file's path or the database's URL without its password, for messages."""
        return self._db.location

    def __repr__(self) -> str:
        return f"StateStore({self.location!r})"

    def close(self) -> None:
        """Give back the connections this process keeps for the store's database (PostgreSQL;
        a DuckDB file is never kept open). The next operation opens them again."""
        if isinstance(self._db, PostgresDatabase):
            close_pools(self._db.url)

    # connections (turns at the file: connectors/duckdb_file.py; PostgreSQL: connectors/postgres_db.py)

    def _connect(self, *, write: bool) -> AbstractContextManager[Any]:
        return self._db.connect(write=write)

    def _write(self, *serialise: str) -> AbstractContextManager[Any]:
        """One transaction; on PostgreSQL, holding the advisory lock of each name in
        ``serialise`` (module docstring)."""
        return self._db.write(*serialise)

    def _sql(self, name: str) -> str:
        return _DIALECT[self._db.dialect][name]

    # migrations

    def _migrate(self) -> None:
        """Apply each pending migration once, each in its own transaction."""
        with self._connect(write=True) as con, self._db.session_lock(con, "schema_migrations"):
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL)"
            )
            versions = con.execute("SELECT version FROM schema_migrations").fetchall()
            applied = {row[0] for row in versions}
            known = load_migrations()
            self._refuse_newer_schema(applied, known)
            for migration in known:
                if migration.version not in applied:
                    self._apply(con, migration)

    def _refuse_newer_schema(self, applied: set[int], known: list[Migration]) -> None:
        newest_known = max((m.version for m in known), default=0)
        if applied and max(applied) > newest_known:
            what = "state file" if self._db.dialect == "duckdb" else "state database"
            raise StateSchemaTooNew(
                f"the {what} {self.location} has schema version {max(applied)}; "
                f"this procore-sync knows up to {newest_known}"
            )

    def _apply(self, con: Any, migration: Migration) -> None:
        with transaction(con):
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, self._clock()],
            )

    def applied_migrations(self) -> list[int]:
        with self._connect(write=False) as con:
            rows = con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        return [row[0] for row in rows]

    # runs

    def start_run(
        self,
        entity: str,
        *,
        flow_run_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        cursor_before: datetime | None = None,
        process: str | None = None,
    ) -> str:
        run_id = str(uuid.uuid4())
        values = [
            run_id,
            entity,
            flow_run_id,
            json.dumps(dict(parameters or {}), default=str, sort_keys=True),
            self._clock(),
            require_aware(cursor_before, "cursor_before"),
            process,
        ]
        with self._write() as con:
            con.execute(
                "INSERT INTO runs (run_id, entity, flow_run_id, parameters, status, started_at,"
                " cursor_before, process) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                values,
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        counts: Mapping[str, int],
        api_calls: int = 0,
        write_calls: int = 0,
        message: str | None = None,
        cursor_after: datetime | None = None,
    ) -> None:
        if status not in _FINAL_RUN_STATUSES:
            allowed = sorted(_FINAL_RUN_STATUSES)
            raise ValueError(f"a run finishes as one of {allowed}, not {status!r}")
        normalised = _normalise_counts(counts)
        assignments = ", ".join(f"{name} = ?" for name in COUNT_NAMES)
        values = [
            status,
            self._clock(),
            *(normalised[name] for name in COUNT_NAMES),
            api_calls,
            write_calls,
            message,
            require_aware(cursor_after, "cursor_after"),
            run_id,
        ]
        with self._write() as con:
            self._require_run(con, run_id)
            con.execute(
                f"UPDATE runs SET status = ?, finished_at = ?, {assignments}, api_calls = ?,"
                " write_calls = ?, message = ?, cursor_after = ? WHERE run_id = ?",
                values,
            )

    def runs(self, entity: str | None = None, limit: int = 20, *, status: str | None = None) -> list[RunRow]:
        """Newest first."""
        where, params = _where({"entity = ?": entity, "status = ?": status})
        with self._connect(write=False) as con:
            cursor = con.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where}"
                " ORDER BY started_at DESC, seq DESC LIMIT ?",
                [*params, limit],
            )
            return [_run_row(row) for row in _dicts(cursor)]

    def mark_crashed(self, run_id: str, message: str) -> bool:
        """A ``running`` run found dead becomes ``crashed``, with the counts of what it recorded;
        False when it is no longer running (it finished meanwhile, or another run marked it)."""
        with self._write() as con:
            found = con.execute(_MARK_CRASHED, [self._clock(), message, run_id]).fetchall()
        return bool(found)

    # pairing

    def pairing(self) -> PairingRow | None:
        """The pairing in force: the newest one recorded; None before the first run."""
        with self._connect(write=False) as con:
            row = con.execute(
                'SELECT environment, company_id, erp, "at", how FROM pairings ORDER BY seq DESC LIMIT 1'
            ).fetchone()
        return None if row is None else _pairing_row(row)

    def pair(self, pairing: Pairing, *, how: str, only_if_unpaired: bool = False) -> PairingRow:
        """Record ``pairing`` as the one in force; with ``only_if_unpaired``, only when the state
        has none yet (atomic: sync-all's first runs start together). Returns the one in force."""
        condition = " WHERE NOT EXISTS (SELECT 1 FROM pairings)" if only_if_unpaired else ""
        with self._write("pairings") as con:
            con.execute(
                'INSERT INTO pairings ("at", environment, company_id, erp, how)'
                f" SELECT ?, ?, ?, ?, ?{condition}",
                [self._clock(), pairing.environment, pairing.company_id, pairing.erp, how],
            )
            row = con.execute(
                'SELECT environment, company_id, erp, "at", how FROM pairings ORDER BY seq DESC LIMIT 1'
            ).fetchone()
        assert row is not None
        return _pairing_row(row)

    def events(
        self, *, entity: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[StateEvent]:
        """Runs found crashed and pairings made, newest first (pairings belong to no entity and
        show whatever ``entity`` is asked for)."""
        where, params = _where({"(entity = ? OR entity IS NULL)": entity, '"at" >= ?': require_aware(since, "since")})
        with self._connect(write=False) as con:
            rows = _dicts(con.execute(f'SELECT * FROM ({self._sql("events")}) AS e {where} ORDER BY "at" DESC LIMIT ?',
                                      [*params, limit]))
        return [StateEvent(**row) for row in rows]

    @staticmethod
    def _require_run(con: Any, run_id: str) -> None:
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
            raise ValueError(f"no run {run_id!r} in the state store; call start_run first")

    # records

    def record_states(
        self, entity: str, keys: Iterable[str] | None = None, *, statuses: Iterable[Status] | None = None
    ) -> dict[str, RecordState]:
        """State rows of ``entity`` by ERP key; only ``keys`` when given (unknown ones absent),
        only those with one of ``statuses`` when given (a run looking for its unfinished records
        need not load the thousands that are done)."""
        sql = f"SELECT {_RECORD_STATE_COLUMNS} FROM record_state WHERE entity = ?"
        params: list[Any] = [entity]
        if statuses is not None:
            sql += " AND status IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(statuses))
        if keys is not None:
            key_list = list(keys)
            if not key_list:
                return {}
            sql += " AND erp_key IN (SELECT unnest(?::VARCHAR[]))"
            params.append(key_list)
        with self._connect(write=False) as con:
            rows = _dicts(con.execute(sql, params))
        return {row["key"]: RecordState(**_with_procore_id(row)) for row in rows}

    def blocked_since_parents_changed(self, entity: str, parents: Iterable[str]) -> set[str]:
        """Keys of ``entity``'s blocked records that a change of ``parents`` since they were last
        tried may have freed: a record waits only on what its parents' state rows say, whose
        every change stamps ``changed_at`` (migration 0009), so a blocked record whose last run
        started after the parents' newest stamp would be blocked again for the same reason."""
        with self._connect(write=False) as con:
            rows = con.execute(
                "SELECT s.erp_key FROM record_state AS s LEFT JOIN runs AS r ON r.run_id = s.last_run_id"
                " WHERE s.entity = ? AND s.status = 'blocked' AND (r.started_at IS NULL OR r.started_at <="
                " (SELECT max(p.changed_at) FROM record_state AS p WHERE p.entity IN (SELECT unnest(?::VARCHAR[]))))",
                [entity, list(parents)],
            ).fetchall()
        return {key for (key,) in rows}

    def parent_states(self, entity: str) -> dict[str, ParentState]:
        """Every record of ``entity`` as its children see it: by ERP key, the Procore id, status,
        message and whether it waits under a failed parent (a sixth of ``record_states``' cost:
        no timestamps to convert)."""
        with self._connect(write=False) as con:
            rows = con.execute(
                "SELECT erp_key, procore_id, status, last_message, coalesce(parent_failed, false)"
                " FROM record_state WHERE entity = ?",
                [entity],
            ).fetchall()
        return {key: ParentState(_procore_id(procore_id), status, message, parent_failed)
                for key, procore_id, status, message, parent_failed in rows}

    def record_outcomes(self, run_id: str, entity: str, outcomes: Sequence[Outcome]) -> None:
        """Upsert ``record_state`` and append ``record_actions`` for all outcomes, atomically.

        When one key appears several times (duplicate ERP keys), every outcome is kept in the
        history and the last one decides the state.
        """
        if not outcomes:
            return
        # Serialised per entity: the merge derives attempts and kept hashes from the state before it.
        with self._write(f"record_state/{entity}") as con:
            self._require_run(con, run_id)
            _stage_outcomes(con, outcomes)
            con.execute(_RESOLVE, [entity])
            now = self._clock()
            con.execute(_UPSERT_STATE, [entity, run_id, now])
            con.execute(_INSERT_ACTIONS, [run_id, entity, now])
            con.execute("DROP TABLE incoming; DROP TABLE resolved")

    def counts_by_status(self, entity: str) -> dict[str, int]:
        """Records of ``entity`` per status; every status present, zero when none."""
        with self._connect(write=False) as con:
            rows = con.execute(
                "SELECT status, count(*) FROM record_state WHERE entity = ? GROUP BY status",
                [entity],
            ).fetchall()
        counts = dict.fromkeys(get_args(Status), 0)
        counts.update({status: n for status, n in rows})
        return counts

    def history(
        self,
        *,
        entity: str | None = None,
        key: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[ActionRow]:
        """Actions, newest first, by entity, ERP key, action status and time (inclusive)."""
        where, params = _where(
            {
                "entity = ?": entity,
                "erp_key = ?": key,
                "status = ?": status,
                '"at" >= ?': require_aware(since, "since"),
            }
        )
        with self._connect(write=False) as con:
            cursor = con.execute(
                f"SELECT {_ACTION_COLUMNS} FROM record_actions {where}"
                ' ORDER BY "at" DESC, action_id DESC LIMIT ?',
                [*params, limit],
            )
            return [ActionRow(**_with_procore_id(row)) for row in _dicts(cursor)]

    # cursors

    def get_cursor(self, entity: str) -> datetime | None:
        with self._connect(write=False) as con:
            row = con.execute("SELECT value FROM cursors WHERE entity = ?", [entity]).fetchone()
        return _as_utc(row[0]) if row else None

    def set_cursor(self, entity: str, value: datetime) -> None:
        aware = require_aware(value, "cursor value")
        with self._write() as con:
            con.execute(
                "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT (entity) DO UPDATE"
                " SET value = excluded.value, updated_at = excluded.updated_at",
                [entity, aware, self._clock()],
            )

    def keys_of_procore_ids(self, entity: str, procore_ids: Iterable[str]) -> dict[str, str]:
        """The ERP keys of ``entity``'s records with these Procore ids: Procore id → ERP key."""
        ids = [str(i) for i in procore_ids]
        if not ids:
            return {}
        with self._connect(write=False) as con:
            rows = con.execute("SELECT procore_id, erp_key FROM record_state WHERE entity = ?"
                               " AND procore_id IN (SELECT unnest(?::VARCHAR[]))", [entity, ids]).fetchall()
        return dict(rows)

    # copying a state (`procore-sync state migrate`)

    def copy_into(self, target: "StateStore", *, replace: bool = False, chunk: int = 10_000) -> dict[str, int]:
        """Copy every state table into ``target``, a PostgreSQL store (migrated when opened), in
        one transaction of the target; rows per table. A target holding any state is refused
        (``StateTargetNotEmpty``) unless ``replace`` empties it first. The sequences go on past
        the copied ids, so runs and actions recorded after sort after the copied ones."""
        if target.backend != "postgresql":
            raise ConfigError(f"a state is copied into a PostgreSQL database, not {target.location}")
        with self._connect(write=False) as source, target._write("state migrate") as into:
            held = {t: into.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _STATE_TABLES}
            if any(held.values()) and not replace:
                found = ", ".join(f"{t} {n}" for t, n in held.items() if n)
                raise StateTargetNotEmpty(f"the state database {target.location} is not empty ({found})")
            if replace:
                into.execute(f"TRUNCATE {', '.join(_STATE_TABLES)}")
            copied = {t: into.copy_rows(t, *_rows_of(source, t, chunk)) for t in _STATE_TABLES}
            for sequence, (table, column) in _SEQUENCES.items():
                into.execute(f"SELECT setval('{sequence}', (SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)")
        return copied

    # webhook events (docs/webhooks.md)

    def add_webhook_event(self, event: WebhookEvent) -> bool:
        """Keep a received event; False when it was received before (a delivery sent twice)."""
        with self._write(f"webhook_events/{event.event_key}") as con:
            if con.execute("SELECT 1 FROM webhook_events WHERE event_key = ?", [event.event_key]).fetchone():
                return False
            con.execute(
                "INSERT INTO webhook_events (event_key, received_at, resource_name, event_type, resource_id,"
                " project_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [event.event_key, require_aware(event.received_at, "received_at"), event.resource_name,
                 event.event_type, event.resource_id, event.project_id, json.dumps(event.payload)])
        return True

    def webhook_events(self, *, status: str | None = None, limit: int = 1000) -> list[WebhookEvent]:
        """Events oldest first, only those with ``status`` when given."""
        where, params = _where({"status = ?": status})
        with self._connect(write=False) as con:
            rows = _dicts(con.execute(
                f"SELECT event_key, received_at, resource_name, event_type, resource_id, project_id, payload,"
                f" status, entity, flow_run_id, message FROM webhook_events {where}"
                f" ORDER BY received_at, event_key LIMIT ?", [*params, limit]))
        return [WebhookEvent(**row | {"received_at": _as_utc(row["received_at"]),
                                      "payload": json.loads(row["payload"])}) for row in rows]

    def settle_webhook_events(self, keys: Sequence[str], status: str, *, entity: str | None = None,
                              flow_run_id: str | None = None, message: str | None = None) -> None:
        """What became of pending events; events settled before keep their first outcome."""
        if not keys:
            return
        with self._write() as con:
            con.execute(
                "UPDATE webhook_events SET status = ?, entity = ?, flow_run_id = ?, message = ?, settled_at = ?"
                " WHERE status = 'pending' AND event_key IN (SELECT unnest(?::VARCHAR[]))",
                [status, entity, flow_run_id, message, self._clock(), list(keys)])

    # uploads shared by the hosts of a state (migration 0010; connectors/sources.py)

    def keep_upload(self, table: str, content: bytes, *, source: str, unless_kept: bool = False) -> datetime:
        """``content`` becomes ``table``'s accepted upload (unless one is kept already and
        ``unless_kept``); when it was accepted."""
        conflict = ("DO NOTHING" if unless_kept else "DO UPDATE SET content = excluded.content,"
                    " accepted_at = excluded.accepted_at, source = excluded.source")
        at = self._clock()
        with self._write() as con:
            con.execute("INSERT INTO accepted_uploads (table_name, content, accepted_at, source) VALUES (?, ?, ?, ?)"
                        f" ON CONFLICT (table_name) {conflict}", [table, content, at, source])
        return at

    def accepted_upload(self, table: str, *, unless_at: datetime | None = None) -> AcceptedUpload | None:
        """``table``'s accepted upload; its content left out when it is still the one accepted at
        ``unless_at`` (the copy the caller holds). None when no upload was accepted."""
        with self._connect(write=False) as con:
            row = con.execute("SELECT accepted_at, source, CASE WHEN accepted_at = ? THEN NULL ELSE content END"
                              " FROM accepted_uploads WHERE table_name = ?", [unless_at, table]).fetchone()
        if row is None:
            return None
        return AcceptedUpload(table, row[0].astimezone(UTC), row[1], bytes(row[2]) if row[2] is not None else None)

    def hold(self, name: str) -> HeldLock | None:
        """``name``'s lock across processes and hosts, taken without waiting and held until
        closed or the process ends (``PostgresDatabase.try_hold``); None when another holds it.
        PostgreSQL only: a DuckDB state is one host's, whose file locks serve instead."""
        if not isinstance(self._db, PostgresDatabase):
            raise ValueError(f"a lock held across hosts needs a state on PostgreSQL, not {self.location}")
        return self._db.try_hold(name)


# The tables a state is made of, in the order a copy fills them (schema_migrations is each
# store's own), and the sequences that number their rows.
_STATE_TABLES: tuple[str, ...] = ("runs", "record_state", "record_actions", "cursors", "pairings", "webhook_events",
                                  "accepted_uploads")
_SEQUENCES: dict[str, tuple[str, str]] = {
    "runs_seq": ("runs", "seq"),
    "record_actions_seq": ("record_actions", "action_id"),
    "pairings_seq": ("pairings", "seq"),
}


def _rows_of(con: Any, table: str, chunk: int) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """``table``'s column names and its rows, fetched ``chunk`` at a time."""
    cursor = con.execute(f"SELECT * FROM {table}")
    columns = [column[0] for column in cursor.description]

    def rows() -> Iterator[Sequence[Any]]:
        while batch := cursor.fetchmany(chunk):
            yield from batch

    return columns, rows()


# What a crashed run recorded before it died, counted as finish_run would have.
_MARK_CRASHED = """
UPDATE runs SET status = 'crashed', finished_at = $1, message = $2,
    created = n.created, updated = n.updated, unchanged = n.unchanged, failed = n.failed,
    blocked = n.blocked, warnings = n.warnings
FROM (SELECT count(*) FILTER (WHERE action = 'create') AS created,
             count(*) FILTER (WHERE action = 'update') AS updated,
             count(*) FILTER (WHERE action = 'skip') AS unchanged,
             count(*) FILTER (WHERE action = 'fail') AS failed,
             count(*) FILTER (WHERE action = 'blocked') AS blocked,
             count(*) FILTER (WHERE status = 'warning') AS warnings
      FROM record_actions WHERE run_id = $3) AS n
WHERE run_id = $3 AND status = 'running'
RETURNING run_id
"""

_EVENTS = """
SELECT finished_at AS "at", entity, 'run crashed' AS what, 'crashed' AS status,
       'run ' || run_id || ' started ' || {started} || ': ' || coalesce(message, '') AS message
FROM runs WHERE status = 'crashed'
UNION ALL
SELECT "at", NULL AS entity, 'paired' AS what, how AS status,
       'Procore ' || environment || ', company ' || company_id || ', ERP ' || erp AS message
FROM pairings
"""

# The statements the two engines do not share, by name: each says the same in its dialect.
_DIALECT: dict[str, dict[str, str]] = {
    "duckdb": {
        "events": _EVENTS.format(started="strftime(started_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ')"),
    },
    "postgresql": {
        "events": _EVENTS.format(started="""to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""),
    },
}


def _pairing_row(row: tuple[Any, ...]) -> PairingRow:
    environment, company_id, erp, at, how = row
    return PairingRow(Pairing(environment, int(company_id), erp), _as_utc(at), how)


# --- bulk outcome merge -----------------------------------------------------------------------

# Column lists instead of row-by-row inserts: DuckDB unnests them in one statement.
_STAGE = """
CREATE TEMP TABLE incoming AS
SELECT unnest(?::BIGINT[]) AS ord,
       unnest(?::VARCHAR[]) AS erp_key,
       unnest(?::VARCHAR[]) AS action,
       unnest(?::VARCHAR[]) AS status,
       unnest(?::VARCHAR[]) AS procore_id,
       unnest(?::VARCHAR[]) AS payload_hash,
       unnest(?::VARCHAR[]) AS message,
       unnest(?::TIMESTAMPTZ[]) AS source_updated_at,
       unnest(?::VARCHAR[]) AS rejected_hash,
       unnest(?::BOOLEAN[]) AS failed_outside,
       unnest(?::BOOLEAN[]) AS parent_failed
"""

# The rules of Outcome's docstring, set-based, against the state before this batch.
_RESOLVE = """
CREATE TEMP TABLE resolved AS
SELECT i.ord, i.erp_key, i.action, i.status, i.message,
       coalesce(i.payload_hash, i.rejected_hash) AS tried_hash,
       CASE WHEN i.action IN ('fail', 'blocked') THEN s.payload_hash
            WHEN i.action = 'skip' THEN coalesce(i.payload_hash, s.payload_hash)
            ELSE i.payload_hash END AS payload_hash,
       CASE WHEN i.action = 'skip' THEN s.rejected_hash ELSE i.rejected_hash END AS rejected_hash,
       CASE WHEN i.action = 'skip' THEN coalesce(s.failed_outside, false) ELSE i.failed_outside END AS failed_outside,
       CASE WHEN i.action = 'skip' THEN coalesce(s.parent_failed, false) ELSE i.parent_failed END AS parent_failed,
       CASE WHEN i.action IN ('fail', 'blocked') THEN coalesce(s.procore_id, i.procore_id)
            ELSE coalesce(i.procore_id, s.procore_id) END AS procore_id,
       coalesce(i.source_updated_at, s.source_updated_at) AS source_updated_at,
       coalesce(s.attempts, 0) AS prior_attempts,
       CASE WHEN i.action IN ('fail', 'blocked') THEN coalesce(s.attempts, 0) + 1
            WHEN i.status IN ('ok', 'warning') THEN 0
            ELSE coalesce(s.attempts, 0) END AS attempts
FROM incoming AS i
LEFT JOIN record_state AS s ON s.entity = ? AND s.erp_key = i.erp_key
"""

_UPSERT_STATE = """
INSERT INTO record_state
    (entity, erp_key, procore_id, payload_hash, status, last_action, last_message, attempts,
     last_run_id, source_updated_at, updated_at, rejected_hash, failed_outside, parent_failed, changed_at)
SELECT $1::VARCHAR, erp_key, procore_id, payload_hash, status, action, message, attempts,
       $2::VARCHAR, source_updated_at, $3::TIMESTAMPTZ, rejected_hash, failed_outside, parent_failed, $3::TIMESTAMPTZ
FROM resolved
-- One row per key, the batch's last (a key twice in one batch: duplicate ERP keys).
WHERE ord IN (SELECT max(ord) FROM resolved GROUP BY erp_key)
ON CONFLICT (entity, erp_key) DO UPDATE SET
    -- Against the row as it was: only a change children see moves changed_at (migration 0009).
    changed_at = CASE WHEN record_state.procore_id IS DISTINCT FROM excluded.procore_id
                        OR record_state.status IS DISTINCT FROM excluded.status
                        OR record_state.last_message IS DISTINCT FROM excluded.last_message
                        OR coalesce(record_state.parent_failed, false) IS DISTINCT FROM excluded.parent_failed
                      THEN excluded.changed_at ELSE record_state.changed_at END,
    procore_id = excluded.procore_id, payload_hash = excluded.payload_hash,
    status = excluded.status, last_action = excluded.last_action,
    last_message = excluded.last_message, attempts = excluded.attempts,
    last_run_id = excluded.last_run_id, source_updated_at = excluded.source_updated_at,
    updated_at = excluded.updated_at, rejected_hash = excluded.rejected_hash,
    failed_outside = excluded.failed_outside, parent_failed = excluded.parent_failed
"""

# ``attempt`` = which consecutive try this was: a success after two failures is attempt 3.
_INSERT_ACTIONS = """
INSERT INTO record_actions
    (run_id, entity, erp_key, action, status, procore_id, message, attempt, payload_hash, "at")
SELECT $1::VARCHAR, $2::VARCHAR, erp_key, action, status, procore_id, message, prior_attempts + 1, tried_hash,
       $3::TIMESTAMPTZ
FROM resolved
ORDER BY ord
"""


def _stage_outcomes(con: Any, outcomes: Sequence[Outcome]) -> None:
    con.execute(
        _STAGE,
        [
            list(range(len(outcomes))),
            [o.key for o in outcomes],
            [o.action for o in outcomes],
            [o.status for o in outcomes],
            [None if o.procore_id is None else str(o.procore_id) for o in outcomes],
            [o.payload_hash for o in outcomes],
            [o.message for o in outcomes],
            [o.source_updated_at for o in outcomes],
            [o.rejected_hash for o in outcomes],
            [o.outside for o in outcomes],
            [o.parent_failed for o in outcomes],
        ],
    )


# --- rows -------------------------------------------------------------------------------------


def _normalise_counts(counts: Mapping[str, int]) -> dict[str, int]:
    normalised = dict.fromkeys(COUNT_NAMES, 0)
    for name, value in counts.items():
        column = _COUNT_ALIASES.get(name, name)
        if column not in normalised:
            raise ValueError(f"unknown count {name!r}; known: {', '.join(COUNT_NAMES)}")
        normalised[column] += int(value)
    return normalised


def _where(conditions: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is not None."""
    used = [(sql, value) for sql, value in conditions.items() if value is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


def _with_procore_id(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"procore_id": _procore_id(row["procore_id"])} if "procore_id" in row else row


def _procore_id(value: str | None) -> ProcoreId | None:
    """Procore ids are stored as text (migration 0004): core ids come back as integers,
    Resource Planning's UUIDs as text."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    """Rows as dicts, every timestamp as a plain UTC datetime."""
    names = [column[0] for column in cursor.description]
    return [
        {name: _as_utc(v) if isinstance(v, datetime) else v for name, v in zip(names, row)}
        for row in cursor.fetchall()
    ]


# Columns named as the dataclass fields they fill.
_RECORD_STATE_COLUMNS = (
    "entity, erp_key AS key, procore_id, payload_hash, status, last_action,"
    " last_message AS message, attempts, last_run_id, source_updated_at, updated_at, rejected_hash,"
    " coalesce(failed_outside, false) AS failed_outside, coalesce(parent_failed, false) AS parent_failed"
)
_ACTION_COLUMNS = (
    'run_id, entity, erp_key AS key, action, status, procore_id, message, attempt, "at"'
)
_RUN_COLUMNS = (
    "run_id, entity, flow_run_id, parameters, status, started_at, finished_at, "
    + ", ".join(COUNT_NAMES)
    + ", api_calls, write_calls, message, cursor_before, cursor_after, process"
)


def _run_row(row: dict[str, Any]) -> RunRow:
    counts = {name: row.pop(name) for name in COUNT_NAMES}
    parameters = json.loads(row.pop("parameters") or "{}")
    return RunRow(**row, parameters=parameters, counts=counts)
