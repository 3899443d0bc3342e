"""One PostgreSQL database shared by many processes on many hosts: pooled connections, transactions.

The PostgreSQL counterpart of ``connectors/duckdb_file.py``. Where a DuckDB file is taken in
turns (one writer at a time on one host), PostgreSQL lets every process of every host work at
once, so what the turns gave for free is asked for explicitly:

- **each operation is one transaction**, as a turn at the file was: a write runs between
  ``BEGIN`` and ``COMMIT`` and is rolled back whole when it raises; a read runs on its own
  (autocommit: one statement, one snapshot);
- **one writer at a time where it matters**: a write that reads before it writes (and would lose
  an update if another did the same in between) names what it serialises on, and takes a
  transaction-scoped advisory lock on that name (``pg_advisory_xact_lock``), released by its own
  ``COMMIT`` or ``ROLLBACK``, never left behind by a killed process. The names are qualified by
  the schema (``current_schema()``), so two states in two schemas of one database never wait on
  each other. Waiting for any lock is bounded by ``lock_timeout_s`` (PostgreSQL's
  ``lock_timeout``, set for the transaction), past which the caller's ``busy`` error is raised,
  as a file still locked is for DuckDB;
- **a session lock** for what spans several transactions (the migrations: each in its own);
- **a held lock** for what spans a whole run in another process's eyes (a table's upload
  claim): a session lock taken without waiting on a connection of its own, outside the pool,
  held until that connection closes. A killed process's connection goes with it, and the
  server ends the session at once, lock included; a host that vanishes is found out by the
  session's TCP keepalives (set short for it: about a minute, not the system's two hours).

Connections are kept: each process holds one pool per database (``psycopg_pool``, at most
``POOL_MAX`` connections, made again after a fork), so an operation costs a round trip or a
few, not a connection. SQL is written as for DuckDB (``?`` or ``$1`` placeholders); ``?`` are
numbered here, and PostgreSQL's native ``$n`` placeholders are sent as they are (psycopg's
``RawCursor``), so the store's statements are one text for both engines. JSON columns come back
as text, as DuckDB hands them, and timestamps in UTC.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.types.string import TextLoader

from procore_sync.errors import ConfigError, TransientError

POOL_MAX = 8
CONNECT_TIMEOUT_S = 10
# A ``?`` outside a quoted literal or name.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1, 0))"
_SESSION_LOCK = "SELECT pg_advisory_lock(hashtextextended(current_schema() || '/' || $1, 0))"
_SESSION_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(current_schema() || '/' || $1, 0))"
_TRY_SESSION_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || '/' || $1, 0))"
# The server's side of a held lock's session: a peer silent this long is gone (Unix sockets ignore it).
_KEEPALIVES = "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3"

_POOLS: dict[tuple[int, str], psycopg_pool.ConnectionPool] = {}
_POOLS_GUARD = threading.Lock()


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``; a text with ``$n`` already is kept."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


class PgConnection:
    """A pooled connection as the store uses a DuckDB one: ``execute`` returns a cursor."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if params is None:  # no parameters: the simple protocol, several statements allowed
            return self._conn.execute(sql)
        return self._conn.execute(numbered(sql), list(params))

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """``rows`` into ``table`` through one ``COPY``: no round trip per row. Names are the
        caller's own (the store's tables), never input."""
        count, names = 0, ", ".join(f'"{column}"' for column in columns)
        with self._conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count

    def begin(self) -> None:
        self._conn.execute("BEGIN")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)
    # Set here, not as ``options``, which would replace the URL's own (a search_path, say).
    conn.execute("SET TimeZone = 'UTC'")


def _connect_kwargs() -> dict[str, Any]:
    return {"autocommit": True, "cursor_factory": psycopg.RawCursor, "connect_timeout": CONNECT_TIMEOUT_S}


def _connection(url: str, what: str) -> psycopg.Connection[Any]:
    """A connection of its own to ``url``; a wrong URL, a server down or a refused login said
    plainly, naming ``what`` and the URL without its password."""
    try:
        return psycopg.connect(url, **_connect_kwargs())
    except psycopg.Error as exc:
        raise ConfigError(f"cannot open {what} {redacted(url)}: {str(exc).strip()}") from exc


def _pool(url: str, what: str) -> psycopg_pool.ConnectionPool:
    """The process's pool for ``url``; the first one tried with a connection of its own, so a
    wrong URL, a server down or a refused login is said at once and plainly."""
    key = (os.getpid(), url)
    with _POOLS_GUARD:
        pool = _POOLS.get(key)
        if pool is not None and not pool.closed:
            return pool
        _connection(url, what).close()
        pool = psycopg_pool.ConnectionPool(url, min_size=1, max_size=POOL_MAX, kwargs=_connect_kwargs(),
                                           configure=_configure, open=True, name=f"procore-sync {redacted(url)}")
        _POOLS[key] = pool
        return pool


def close_pools(url: str | None = None) -> None:
    """Close this process's pools (only ``url``'s when given); the next operation opens them again."""
    with _POOLS_GUARD:
        for key in [k for k in _POOLS if url is None or k[1] == url]:
            pool = _POOLS.pop(key)
            if key[0] == os.getpid():
                pool.close()


atexit.register(close_pools)


class HeldLock:
    """An advisory lock held on a connection of its own until ``close`` (or the process ends)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def close(self) -> None:
        # Given back first: a closed connection's session ends, and its locks with it, only once
        # the server has handled the goodbye, after a next try of the lock may have been refused.
        try:
            if not self._conn.closed:
                self._conn.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            pass  # a connection already broken: its session is ending on the server anyway
        finally:
            self._conn.close()


class PostgresDatabase:
    """Operations on one PostgreSQL database (see the module docstring); picklable, holds no
    connection (the process's pool does)."""

    def __init__(self, url: str, *, what: str, busy: type[TransientError], lock_timeout_s: float = 60.0) -> None:
        self.url = url
        self.what = what  # "the state database": for messages
        self._busy_error = busy
        self.lock_timeout_s = lock_timeout_s

    @property
    def location(self) -> str:
        return redacted(self.url)

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[PgConnection]:
        """A connection for one operation (autocommit), given back to the pool on the way out.
        ``write`` is for symmetry with ``DuckDbFile``: PostgreSQL needs no mode to write."""
        try:
            with _pool(self.url, self.what).connection(timeout=self.lock_timeout_s) as conn:
                yield PgConnection(conn)
        except psycopg_pool.PoolTimeout as exc:
            raise self._busy(f"no connection of the pool ({POOL_MAX}) came free") from exc
        except psycopg.errors.LockNotAvailable as exc:
            raise self._busy("another transaction held a lock") from exc

    @contextmanager
    def write(self, *serialise: str) -> Iterator[PgConnection]:
        """One transaction, holding the advisory lock of each name in ``serialise`` (sorted, so
        two writers never wait on each other crosswise) until it ends."""
        with self.connect(write=True) as con:
            con.begin()
            try:
                con.execute("SELECT set_config('lock_timeout', $1, true)", [f"{round(self.lock_timeout_s * 1000)}ms"])
                for name in sorted(set(serialise)):
                    con.execute(_LOCK, [name])
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    @contextmanager
    def session_lock(self, con: PgConnection, name: str) -> Iterator[None]:
        """Hold ``name``'s advisory lock across several transactions on ``con``."""
        con.execute("SELECT set_config('lock_timeout', $1, false)", [f"{round(self.lock_timeout_s * 1000)}ms"])
        con.execute(_SESSION_LOCK, [name])
        try:
            yield
        finally:
            con.execute(_SESSION_UNLOCK, [name])
            con.execute("RESET lock_timeout")

    def try_hold(self, name: str) -> HeldLock | None:
        """``name``'s advisory lock, taken without waiting on a connection of its own and held
        until the lock is closed or the process's connection goes (module docstring); None when
        another session holds it."""
        conn = _connection(self.url, self.what)
        try:
            conn.execute(_KEEPALIVES)
            row = conn.execute(_TRY_SESSION_LOCK, [name]).fetchone()
        except BaseException:
            conn.close()
            raise
        if row is None or not row[0]:
            conn.close()
            return None
        return HeldLock(conn)

    def _busy(self, holder: str) -> TransientError:
        return self._busy_error(f"{self.what} {self.location}: {holder} within {self.lock_timeout_s:g} s")
