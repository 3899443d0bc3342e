"""A throwaway PostgreSQL cluster on this machine, for a Prefect server that many threads and
processes write to at once.

Prefect's server on SQLite refuses concurrent writers ("database is locked", answered 503), and
Prefect's client waits two seconds or more before it asks again: measured here, four empty flows
started at once by four threads took 2.5 s on SQLite and 0.3 s on PostgreSQL, and the server
came up in 2.8 s instead of 6.9 s. sync-all runs its entities' flows four at a time, so the
test suite's and the benchmarks' Prefect server runs on PostgreSQL where it is installed
(``app.prefect_server.temporary_prefect_server``).

The cluster lives in a folder of its own and goes with it: ``initdb``, ``pg_ctl start`` on a
free port (TCP on 127.0.0.1, its socket in the folder), stopped immediately at the end. It is
built for speed, not durability (no fsync): nothing in it outlives the process that started it.
PostgreSQL refuses to run as root, so under root the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

# Debian puts the server's programs out of PATH, one folder per major version.
_DEBIAN_BIN = Path("/usr/lib/postgresql")
# Settings of a cluster whose data may be lost with the process: no waiting for the disk.
_THROWAWAY = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c listen_addresses=127.0.0.1"


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(_DEBIAN_BIN.glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


class LocalPostgres:
    """A cluster on ``port`` in a fresh folder under the system's temporary folder (``with``
    starts and ends it). Not started, it reaches a cluster another process started on ``port``
    (``create_database``, ``url``), and stops nothing."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        self.bin_dir, self.port = bin_dir, port
        self.folder: Path | None = None

    def start(self) -> "LocalPostgres":
        # Not under pytest's or the user's folders: the postgres user must be able to reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="procore-sync-postgres-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        data = self.folder / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "start",
                  "-o", f"-p {self.port} -k {self.folder} {_THROWAWAY}")
        return self

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given); returns its SQLAlchemy URL for
        Prefect (asyncpg, Prefect's driver)."""
        copy = ["-T", template] if template else []
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", *copy, name)
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def url(self, database: str, *, schema: str | None = None) -> str:
        """A libpq URL of ``database`` (psycopg, the state store's driver), its tables in
        ``schema`` when given (the schema first on the search path)."""
        options = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}{options}"

    def stop(self) -> None:
        if self.folder is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.folder / "server.log" if self.folder else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                               + (f"\nserver log:\n{tail}" if tail else ""))

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()
