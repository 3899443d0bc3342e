"""What an ERP → Procore run reads: the rows changed since the cursor, the records to read again,
and uploads. No Prefect here: the run hands in ``extract``, its Prefect task over ``read_rows``.

- An ordinary run reads the rows changed since the cursor plus the records to read again
  whatever it (``tasks/healing.py``): held back, failures outside the record whose backoff is
  over, and blocked records whose parents changed since they were last tried. The other blocked
  records would be blocked again for the same reason (re-mapping them was most of a no-change
  sync-all's local time): they are counted as they stand (``Ledger.still_blocked``).
- A table whose source takes uploads (``UploadSource``) is read whole from a new upload, which
  the run claims, and accepts only once it completes; without a new one, only the records still
  waiting are read, from the last accepted upload.
- A one-time upload (``SyncOptions.upload_file``) is the table for this run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from connectors.erp import CsvErpSource, rows_with_keys
from connectors.sources import UploadSource, source_of
from connectors.state import StateStore
from procore_sync.errors import ConfigError
from procore_sync.records import ErpSource, RecordState, SourceRow, key_of
from tasks.actions import Action
from tasks.healing import MAY_READ_AGAIN, to_read_again
from tasks.replace import plan_deactivations
from tasks.spec import EntitySpec, SyncOptions, ancestors

# extract(source, spec, since, keys, blocked, projects): ``read_rows``, or a task running it.
Extract = Callable[[ErpSource, EntitySpec, "datetime | None", Sequence[str], Sequence[str], Sequence[str]],
                   list[SourceRow]]


def read_rows(source: ErpSource, spec: EntitySpec, since: datetime | None, keys: Sequence[str],
              blocked: Sequence[str] = (), projects: Sequence[str] = ()) -> list[SourceRow]:
    """The rows changed since the cursor, plus the blocked ones (their parent may have landed);
    or, for a targeted run, every row with one of the keys and in one of the projects."""
    if keys or projects:
        return [row for row in source.read(spec.erp_table)
                if (not keys or row_key(spec, row) in keys) and (not projects or _project(row) in projects)]
    rows = list(source.read(spec.erp_table, since=since))
    missing = set(blocked) - {row_key(spec, row) for row in rows} if since is not None else set()
    # Found by the source (DuckDB: by key), not by reading the whole table into Python.
    return rows + rows_with_keys(source, spec.erp_table, spec.key_field, missing)


def row_key(spec: EntitySpec, row: SourceRow) -> str:
    return key_of(row.data, spec.key_field)


def _project(row: SourceRow) -> str:
    """The ERP project a row belongs to; empty for company-wide records such as suppliers."""
    return str(row.data.get("project_number") or "").strip()


class ErpReading:
    """One run's read of its ERP table: which rows, from which source, and the upload it holds."""

    def __init__(self, spec: EntitySpec, options: SyncOptions, source: ErpSource, store: StateStore,
                 started: datetime, since: datetime | None, extract: Extract = read_rows) -> None:
        self.spec, self.options, self.source, self.store = spec, options, source, store
        self.started, self.since, self.extract = started, since, extract
        self.upload: UploadSource | None = None  # the upload this run syncs, if it reads one
        self.notes: list[str] = []  # what the summary says about the read
        self.still_blocked: list[RecordState] = []  # blocked, not read again: no parent changed

    def read(self) -> list[SourceRow]:
        if self.options.upload_file:
            return self._read_one_time(Path(self.options.upload_file))
        source = source_of(self.source, self.spec.erp_table)
        if not isinstance(source, UploadSource):
            return self.extract(self.source, self.spec, self.since, self.options.erp_keys, self._unfinished(),
                                self.options.projects)
        table = self.spec.erp_table
        self.upload = source if source.take(table, self.started) else None
        if self.upload is not None:
            self.notes.append(f"synced the new upload of {table}.csv from {source.drop.describe()}")
            return self._read_whole(source)
        # Nothing new uploaded: only the records still waiting, from the last accepted upload.
        self.notes.append(f"another run is syncing the upload of {table}.csv" if source.in_use(table)
                          else f"no new upload of {table}.csv in {source.drop.describe()}")
        waiting = self.options.erp_keys or self._unfinished()
        if not source.available(table) or not (waiting or self.options.projects):
            return []
        return self._read_whole(source, waiting)

    def _read_one_time(self, file: Path) -> list[SourceRow]:
        """A one-time upload: the file is the table for this run, whatever its usual source."""
        if not file.is_file():
            raise ConfigError(f"the upload {file} does not exist on the machine that runs the flow")
        self.notes.append(f"one-time upload of {file}")
        return self._read_whole(CsvErpSource(file.parent, tables={self.spec.erp_table: file.stem}))

    def _read_whole(self, source: ErpSource, keys: Sequence[str] | None = None) -> list[SourceRow]:
        """A file's rows, whatever the cursor (its stamps say nothing about what was synced),
        limited to the run's keys and projects."""
        return self.extract(source, self.spec, None, keys or self.options.erp_keys, (), self.options.projects)

    def _unfinished(self) -> list[str]:
        """Keys to read again whatever the cursor (the module's docstring)."""
        states = self.store.record_states(self.spec.name, statuses=MAY_READ_AGAIN)
        freed = self.store.blocked_since_parents_changed(self.spec.name, ancestors(self.spec))
        self.still_blocked = [s for s in states.values() if s.status == "blocked" and s.key not in freed]
        return to_read_again([s for s in states.values() if s.status != "blocked" or s.key in freed], self.started)

    def not_read_again(self, rows: list[SourceRow]) -> list[RecordState]:
        """The blocked records left as they stand, unless the run read their row anyway (changed
        in the ERP); a run limited to keys or projects counts only what it read."""
        if self.options.targeted:
            return []
        read = {row_key(self.spec, row) for row in rows}
        return [s for s in self.still_blocked if s.key not in read]

    def deactivations(self, rows: list[SourceRow]) -> list[Action]:
        """Replace mode (``tasks.replace``): what a new upload no longer has is deactivated;
        runs limited to keys or projects read only part of it, so they never deactivate."""
        if self.upload is None or not self.upload.replace or self.options.targeted:
            return []
        replacement = plan_deactivations(
            self.spec, {row_key(self.spec, row) for row in rows},
            [row.line or 0 for row in rows if row.problem or not row_key(self.spec, row)],
            self.store.record_states(self.spec.name),
            max_share=self.upload.max_deactivate_share, force=self.options.force_deactivation,
        )
        if replacement.note:
            self.notes.append(replacement.note)
        return replacement.actions

    def what(self) -> str:
        if self.upload is not None:
            return "from the new upload (every row)"
        if self.options.projects:
            return f"in project(s) {', '.join(self.options.projects)} (company-wide records are not in any)"
        return "by key" if self.options.erp_keys else f"since {self.since or 'the beginning'}"

    def accept(self) -> str | None:
        """The run completed: the upload it synced becomes the table's truth."""
        return self.upload.accept(self.spec.erp_table, self.started) if self.upload is not None else None

    def release(self) -> None:
        """Not accepted (a dry run, a failure, a deferral, a timeout): the upload goes back in
        the drop, where the next run reads it again."""
        if self.upload is not None and self.upload.holds(self.spec.erp_table):
            self.upload.discard(self.spec.erp_table)
