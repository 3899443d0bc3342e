"""Where each ERP table comes from: one source per table, chosen in the settings.

``PROCORE_SYNC_SOURCES`` maps a table (a template's name: ``suppliers``, ``employees``,
``resource_people``...) or ``default`` to a source; unnamed tables come from the default, which
is the ERP DuckDB file (``PROCORE_SYNC_ERP_PATH``). So people can come from the HR system's SFTP
drop and projects from the ERP's database::

    PROCORE_SYNC_SOURCES='{"resource_people": {"kind": "sftp", "host": "hr.example", ...},
                           "resource_projects": {"kind": "query", "path": "erp.duckdb", ...}}'

Kinds: ``duckdb`` (tables of a DuckDB file), ``query`` (one SQL query per table,
``connectors.erp_query``), ``api`` (a JSON-over-HTTP system of record, ``connectors.erp_api``),
and the two template drops, ``folder`` and ``sftp`` (``connectors.drops``), read here through
``UploadSource``.

An upload is the whole truth for its table once complete (the drop decides when: a ``.done``
marker or an atomic rename). A run takes it (claims it in the drop and copies it into
``<home>/uploads/pending``), syncs every row, and when the run completes accepts it: the copy
becomes the table's accepted upload, which later runs and child entities read (a child's parent
rows, the records still blocked) until the next upload, and the drop archives the file. In
replace mode, the engine deactivates in Procore the records a new upload no longer has, within a
safety share.

Where the accepted uploads live and who may take a table's upload is the ``Staging``, chosen
with the state (``staging_of``), because its hosts are the state's: with the DuckDB state (one
host) the accepted copy is ``<home>/uploads/current/<table>.csv`` and the claim a file lock
(``FolderStaging``); with the state on PostgreSQL (workers on several hosts) the accepted copy
is a row of the state database, which each host reads into its own ``current/`` folder, and the
claim a PostgreSQL advisory lock (``SharedStaging``). Either claim goes with a killed process.
The pending copy is the claiming run's working copy, so it stays in its host's folder.
"""

from __future__ import annotations

import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from connectors.drops import Drop, FolderDrop, SftpDrop
from connectors.erp import CsvErpSource, DuckDbErpSource, ErpSource, SourceRow, key_values, rows_with_keys
from connectors.erp_api import ApiErpSource
from connectors.erp_query import QueryErpSource
from connectors.state import StateStore
from procore_sync.errors import ConfigError
from procore_sync.source_config import (
    ApiSourceConfig,
    DuckDbSourceConfig,
    QuerySourceConfig,
    SftpTemplatesConfig,
    SourceConfig,
)

try:
    import fcntl
except ImportError:  # Windows: no lock; one run at a time per table is then the operator's to keep.
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from procore_sync.settings import Settings

DEFAULT = "default"


class Held(Protocol):
    """A table's claim while it is held: closing it gives it back."""

    def close(self) -> None: ...


class Staging(ABC):
    """Where the uploads a run takes are kept (``pending/``), where each table's accepted upload
    is read (``accepted``: a file under ``current/``) and who holds each table's claim (module
    docstring). A claim is held from ``claim`` until the handle it returns is closed."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pending_dir, self.current_dir = home / "pending", home / "current"

    @abstractmethod
    def claim(self, table: str) -> Held | None:
        """The claim of ``table``'s uploads, taken without waiting; None when another run holds it."""

    @abstractmethod
    def keep(self, table: str, source: str) -> None:
        """The pending copy becomes ``table``'s accepted upload; ``source`` says where it came from."""

    @abstractmethod
    def accepted(self, table: str) -> Path | None:
        """A file of ``table``'s accepted upload; None when no upload was accepted yet."""


class FolderStaging(Staging):
    """One host's: the accepted copies are files under ``current/`` and a table's claim is an
    exclusive lock on ``<home>/<table>.lock``, which goes with a killed process."""

    def claim(self, table: str) -> Held | None:
        self.home.mkdir(parents=True, exist_ok=True)
        handle = (self.home / f"{table}.lock").open("a")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle  # closing the file releases the lock

    def keep(self, table: str, source: str) -> None:
        self.current_dir.mkdir(parents=True, exist_ok=True)
        os.replace(self.pending_dir / f"{table}.csv", self.current_dir / f"{table}.csv")

    def accepted(self, table: str) -> Path | None:
        path = self.current_dir / f"{table}.csv"
        return path if path.is_file() else None


class SharedStaging(Staging):
    """The hosts of one PostgreSQL state's: the accepted copies are rows of the state database
    (``StateStore.keep_upload``), each read into this host's ``current/`` folder when it changed,
    and a table's claim is an advisory lock held on a connection of its own (``StateStore.hold``),
    which the server frees when the process's connection goes. The store opens at first use, so
    a run with no upload table never touches it for this."""

    def __init__(self, home: Path, open_store: Callable[[], StateStore]) -> None:
        super().__init__(home)
        self._open_store = open_store
        self._store: StateStore | None = None
        self._copies: dict[str, datetime] = {}  # when the upload this host's copy holds was accepted

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def claim(self, table: str) -> Held | None:
        return self.store.hold(f"uploads/{table}")

    def keep(self, table: str, source: str) -> None:
        pending = self.pending_dir / f"{table}.csv"
        accepted_at = self.store.keep_upload(table, pending.read_bytes(), source=source)
        self.current_dir.mkdir(parents=True, exist_ok=True)
        os.replace(pending, self.current_dir / f"{table}.csv")
        self._copies[table] = accepted_at

    def accepted(self, table: str) -> Path | None:
        path = self.current_dir / f"{table}.csv"
        held = self._copies.get(table) if path.is_file() else None  # a copy removed is fetched again
        found = self.store.accepted_upload(table, unless_at=held)
        if found is None and path.is_file():  # accepted here before the state was shared
            self.store.keep_upload(table, path.read_bytes(), source=f"{path} on {socket.gethostname()}",
                                   unless_kept=True)
            found = self.store.accepted_upload(table)
        if found is None:
            return None
        if found.content is not None:
            self.current_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{table}.csv.{os.getpid()}.{threading.get_ident()}")
            partial.write_bytes(found.content)
            os.replace(partial, path)  # readers of this host see the old copy or the new, whole
            self._copies[table] = found.accepted_at
        return path


class UploadSource:
    """CSV templates dropped in a folder or on an SFTP server (see the module docstring).

    While a run holds an upload (from ``take`` to ``accept`` or ``discard``) it holds its
    table's claim (``Staging.claim``), so two runs (sync-all's and the entity's own deployment,
    on one host or, with a shared state, on two) never sync one upload twice; the claim goes
    with a killed process, and the next run resumes the upload that process had claimed.
    """

    def __init__(self, drop: Drop, staging: Staging | Path, *, replace: bool = True,
                 max_deactivate_share: float = 0.2) -> None:
        """``staging``: a folder stands for ``FolderStaging`` of it (one host's)."""
        self.drop = drop
        self.replace, self.max_deactivate_share = replace, max_deactivate_share
        self.staging = staging if isinstance(staging, Staging) else FolderStaging(staging)
        self.pending_dir = self.staging.pending_dir
        self._held: dict[str, Held] = {}

    def describe(self) -> str:
        return f"templates uploaded to {self.drop.describe()}"

    def take(self, table: str, now: datetime) -> Path | None:
        """A complete new upload of ``table``, claimed in the drop and copied locally; None when
        there is none, or when another run is syncing one."""
        if not self._lock(table):
            return None
        try:
            local = self.drop.fetch(table, self.pending_dir) if self.drop.claim(table, now) else None
            if local is None:  # nothing complete (or it changed while copied: still being written)
                self._unlock(table)
            return local
        except BaseException:
            self.discard(table)
            raise

    def in_use(self, table: str) -> bool:
        """Whether another run holds an upload of ``table`` now."""
        if table in self._held:
            return False
        if not self._lock(table):
            return True
        self._unlock(table)
        return False

    def holds(self, table: str) -> bool:
        """Whether this source holds an upload of ``table`` it has neither accepted nor discarded."""
        return table in self._held

    def discard(self, table: str) -> None:
        """Give back an upload the run did not accept: the drop has it again for the next run."""
        try:
            (self.pending_dir / f"{table}.csv").unlink(missing_ok=True)
            self.drop.release(table)
        finally:
            self._unlock(table)

    def available(self, table: str) -> bool:
        """Whether any upload of ``table`` (pending or accepted) is here to read."""
        return (self.pending_dir / f"{table}.csv").is_file() or self.staging.accepted(table) is not None

    def accept(self, table: str, stamp: datetime) -> str:
        """The run synced the upload: keep it as the table's accepted upload, then archive it in
        the drop (kept first: a failure in between leaves the claim, which the next run resumes,
        never an archived upload that is nobody's truth); what became of the file in the drop,
        for the run's message."""
        try:
            self.staging.keep(table, source=f"{table}.csv from {self.drop.describe()}")
            archived = self.drop.archive(table, stamp)
        finally:
            self._unlock(table)
        if archived is None:
            return (f"not archived: {table}.csv changed after it was read (still being written?); it stays in "
                    "the drop and counts once its uploader marks it complete again")
        return f"archived as {archived}"

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        """The pending upload's rows, else the last accepted upload's (``since`` does not apply:
        an upload is read whole)."""
        pending = self.pending_dir / f"{table}.csv"
        file = pending if pending.is_file() else self.staging.accepted(table)
        if file is None:
            raise ConfigError(f"no upload of {table}.csv has reached procore-sync yet ({self.describe()})")
        return CsvErpSource(file.parent).read(table)

    def close(self) -> None:
        self.drop.close()

    def _lock(self, table: str) -> bool:
        if table in self._held:
            return True
        held = self.staging.claim(table)
        if held is None:
            return False
        self._held[table] = held
        return True

    def _unlock(self, table: str) -> None:
        held = self._held.pop(table, None)
        if held is not None:
            held.close()


class SourceSet:
    """Every table's source: ``of(table)``; reading through the set reads the table's source."""

    def __init__(self, default: ErpSource, by_table: Mapping[str, ErpSource] | None = None) -> None:
        self.default, self.by_table = default, dict(by_table or {})

    def of(self, table: str) -> ErpSource:
        return self.by_table.get(table, self.default)

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        return self.of(table).read(table, since=since)

    def read_keys(self, table: str, key_field: str, keys: Collection[str]) -> list[SourceRow]:
        return rows_with_keys(self.of(table), table, key_field, keys)

    def key_values(self, table: str, key_field: str) -> set[str]:
        return key_values(self.of(table), table, key_field)

    def describe(self) -> str:
        named = "; ".join(f"{table}: {source.describe()}" for table, source in sorted(self.by_table.items()))
        return self.default.describe() + (f"; {named}" if named else "")


def close_sources(source: ErpSource) -> None:
    """Close what the sources hold open (an SFTP connection, an HTTP session); they reopen on use."""
    for each in [source.default, *source.by_table.values()] if isinstance(source, SourceSet) else [source]:
        close = getattr(each, "close", None)
        if close is not None:
            close()


def source_of(source: ErpSource, table: str) -> ErpSource:
    """The source that serves ``table``: itself, unless it is a ``SourceSet``."""
    return source.of(table) if isinstance(source, SourceSet) else source


def build_source(config: SourceConfig, *, erp_path: Path, staging: Staging | Path) -> ErpSource:
    if isinstance(config, DuckDbSourceConfig):
        return DuckDbErpSource(config.path or erp_path, tables=config.tables)
    if isinstance(config, QuerySourceConfig):
        return QueryErpSource(config)
    if isinstance(config, ApiSourceConfig):
        return ApiErpSource(config)
    drop: Drop = SftpDrop(config) if isinstance(config, SftpTemplatesConfig) else FolderDrop(config)
    return UploadSource(drop, staging, replace=config.replace, max_deactivate_share=config.max_deactivate_share)


def staging_of(settings: Settings) -> Staging:
    """Where the settings' uploads are staged: shared where the state is (module docstring)."""
    if settings.state_url is None:
        return FolderStaging(settings.uploads_dir)
    return SharedStaging(settings.uploads_dir, lambda: StateStore.open(settings))


def build_sources(settings: Settings) -> SourceSet:
    """The settings' sources; tables they do not name come from the ERP's DuckDB file."""
    staging = staging_of(settings)
    made = {table: build_source(config, erp_path=settings.erp_path, staging=staging)
            for table, config in settings.sources.items()}
    default = made.pop(DEFAULT, None) or DuckDbErpSource(settings.erp_path)
    return SourceSet(default, made)
