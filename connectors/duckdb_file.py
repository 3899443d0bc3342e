"""One DuckDB file shared by several processes and threads: short-lived connections, in turn.

DuckDB lets one process at a time open a file read-write, and within a process refuses a second
connection with another configuration (read-only beside read-write). procore-sync has several
writers of one file (Prefect flow runs are separate processes; sync-all runs flows in threads),
so no connection is kept: each operation opens the file, works, and closes it. Three locks make
the turns cheap and safe, outermost first:

- a lock per file and process, so threads take turns (DuckDB would otherwise raise conflicts
  between their transactions, or refuse the second configuration); waited for within
  ``lock_timeout_s`` like the others, so a thread stuck holding the file stops only itself;
- an advisory lock beside the file (``<file>.lock``): procore-sync processes queue there,
  readers shared and writers exclusive, as DuckDB itself allows. Trying it costs microseconds,
  where a refused ``duckdb.connect`` costs ~8 ms of CPU taken from the process holding the file;
- DuckDB's own lock, retried after a random 5-50 ms, for holders outside procore-sync (a DuckDB
  CLI someone left open).

One more wait is DuckDB's alone: a thread's query that reads every attached file's catalog
(``duckdb_columns()``) holds the other files it saw until it ends, even those detached meanwhile;
attaching such a file again is refused until then, and retried like a lock.

A file still locked after ``lock_timeout_s`` raises the caller's ``busy`` error, a
``TransientError`` that names the file.

A connection of its own to a file costs ~12 ms of CPU, whatever the query: DuckDB builds a new
database instance, its catalog of functions, each time (a no-change sync-all at scale 5 opened
324, 4.4 s of its 16 s of CPU). So each process keeps one in-memory instance, and an operation
attaches the file to it (about 2 ms), works on a cursor of its own (``USE`` the file: the SQL
names no catalog) and detaches the file, which lets its lock go as closing a connection did.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from tenacity import RetryError, Retrying, retry_if_exception, retry_if_exception_type, stop_after_delay, wait_random
from tenacity.retry import retry_base

from procore_sync.errors import ConfigError, TransientError

try:
    import fcntl
except ImportError:  # Windows: no queue file; DuckDB's own lock, retried, still guards the file.
    fcntl = None  # type: ignore[assignment]

_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.Lock())


# The process's in-memory instance that files are attached to, and the process it belongs to
# (a forked child makes its own: an instance does not survive a fork).
_HUB: tuple[int, duckdb.DuckDBPyConnection] | None = None


def _hub() -> duckdb.DuckDBPyConnection:
    global _HUB
    with _THREAD_LOCKS_GUARD:
        if _HUB is None or _HUB[0] != os.getpid():
            _HUB = (os.getpid(), duckdb.connect(":memory:"))
        return _HUB[1]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_lock_conflict(exc: BaseException) -> bool:
    # DuckDB says "Could not set lock on file ...: Conflicting lock is held in ..." while another
    # process has the file open for writing.
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def is_still_attached(exc: BaseException) -> bool:
    # "Unique file handle conflict: Cannot attach ...": a query of another thread that reads every
    # attached file's catalog (``duckdb_columns()``, ``duckdb_tables()``, DuckDB's "did you mean"
    # hints) still holds this file after its last holder's DETACH; it lets go when that query ends.
    return isinstance(exc, duckdb.ResourceInUseException)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


class DuckDbFile:
    """Turns at one DuckDB file (see the module docstring); picklable, holds no connection."""

    def __init__(
        self,
        path: Path | str,
        *,
        what: str,
        busy: type[TransientError],
        lock_timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        attached: bool = True,
    ) -> None:
        # Resolved, so two spellings of one file share one in-process lock.
        self.path = Path(path).expanduser().resolve()
        self.what = what  # "the state file", "the ERP database": for messages
        self._busy_error = busy
        self.lock_timeout_s = lock_timeout_s
        self._sleep = sleep
        # Attached to the process's instance (module docstring); False: an instance of its own
        # per connection, for callers that attach other files to it under names of their own.
        self.attached = attached

    @contextmanager
    def connect(self, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one operation, in UTC, closed on the way out."""
        with self._thread_turn(), self._turn(shared=not write):
            con = self._open(read_only=not write)
            try:
                if self.attached:
                    con.execute(f"USE {self._alias}")
                con.execute("SET TimeZone = 'UTC'")
                yield con
            finally:
                con.close()  # rolls back what it left open, so the file can be detached
                if self.attached:
                    with _hub().cursor() as detach:
                        detach.execute(f"DETACH {self._alias}")

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction."""
        with self.connect(write=True) as con, transaction(con):
            yield con

    @contextmanager
    def _thread_turn(self) -> Iterator[None]:
        lock = _thread_lock(self.path)
        if not lock.acquire(timeout=self.lock_timeout_s):
            raise self._busy("another thread of this process")
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _turn(self, *, shared: bool) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        # Trying is cheap here, so try often: the next writer starts as soon as the file is free.
        retrying = self._retrying(retry_if_exception_type(BlockingIOError), wait_s=(0.001, 0.005))
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        with self.path.with_name(self.path.name + ".lock").open("a") as handle:
            try:
                retrying(fcntl.flock, handle.fileno(), mode)
            except RetryError as exc:
                raise self._busy("another procore-sync process") from exc
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @property
    def _alias(self) -> str:
        """The file's name in the process's instance: one per path (its turns are taken in
        ``_thread_turn``, so it is attached once at a time)."""
        return "file_" + hashlib.blake2b(str(self.path).encode(), digest_size=8).hexdigest()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A cursor of the process's instance, the file attached."""
        conflict = retry_if_exception(is_lock_conflict)
        if not self.attached:
            retrying = self._retrying(conflict, wait_s=(0.005, 0.05))
            return self._opened(retrying, duckdb.connect, str(self.path), read_only=read_only)
        retrying = self._retrying(conflict | retry_if_exception(is_still_attached), wait_s=(0.005, 0.05))
        mode = " (READ_ONLY)" if read_only else ""
        con = _hub().cursor()
        try:
            self._opened(retrying, con.execute, f"ATTACH {_literal(str(self.path))} AS {self._alias}{mode}")
        except BaseException:
            con.close()
            raise
        return con

    def _opened(self, retrying: Retrying, open_: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``open_`` retried while another process holds DuckDB's lock; errors said as ours."""
        try:
            return retrying(open_, *args, **kwargs)
        except RetryError as exc:
            raise self._busy("another process") from exc.last_attempt.exception()
        except duckdb.Error as exc:
            raise ConfigError(f"cannot open {self.what} {self.path}: {exc}") from exc

    def _retrying(self, condition: retry_base, *, wait_s: tuple[float, float]) -> Retrying:
        return Retrying(
            retry=condition,
            wait=wait_random(*wait_s),
            stop=stop_after_delay(self.lock_timeout_s),
            sleep=self._sleep,
        )

    def _busy(self, holder: str) -> TransientError:
        return self._busy_error(f"{self.what} {self.path} stayed locked by {holder} for {self.lock_timeout_s:g} s")
