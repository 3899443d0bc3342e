"""Template drops: where CSV templates are uploaded, read only once complete, archived after use.

A drop is a folder, local (``FolderDrop``) or on an SFTP server (``SftpDrop``), where the system
of record (or a person) puts ``<table>.csv``. Two conventions say when a file is complete, so a
half-uploaded file is never read:

- ``ready="marker"`` (default): the uploader writes ``<table>.csv``, then an empty
  ``<table>.csv.done`` beside it. The file counts only once its marker exists and is not older
  than the file: a marker written before the file's last change was left by an earlier upload
  (a newer file is being written in place over it), so it does not count.
- ``ready="rename"``: the uploader writes under a temporary name (``<table>.csv.part``, or any
  name starting with ``.``) and renames it to ``<table>.csv`` when complete (a rename is atomic
  on one file system and on SFTP servers).

A run **claims** a complete upload before reading it: one rename moves it into
``processing/<table>.csv`` and its marker is removed, so the uploader may put the next upload
in place while the run works, and that one is neither overwritten nor archived unread. The
claim notes the file's size and modification time: a file that changes after that was still
being written (an uploader that marked it too early, or writes in place over it; its open file
follows the rename), so the copy the run reads (``fetch``) and the archiving are refused, and
the file goes back where it was uploaded, without a marker, for its uploader to mark again. Then:

- the run synced it: ``archive`` moves it into ``archive_folder`` as
  ``<table>-<UTC stamp>.csv``, so the drop holds only what is new;
- the run did not accept it (failed, refused, dry run, deferred): ``release`` puts it back as
  it was uploaded (with its marker), unless a newer upload has arrived meanwhile;
- the run was killed: the claim stays in ``processing/``; the next claim resumes it, or, when a
  newer complete upload is there, archives it as ``<table>-<stamp>-superseded.csv`` (each
  upload is the whole truth, so only the newest counts).

Renames never overwrite (SFTP's standard rename cannot), so a file is never lost to a race.
Two runs on one machine never hold one table's claim at once (``connectors.sources``).

SFTP: the server's host key must be in ``known_hosts``; an unknown or changed key is refused,
never accepted. Passwords and key passphrases are secrets, redacted from every message. Every
wait on the server has the limit ``timeout_s``: connecting, the handshake, logging in, and each
request of the session (a read, a write, a rename: a server that keeps the session open and stops
answering raises ``DropUnreachable`` and the session is dropped, so the next use opens a fresh
one); a keepalive every ``keepalive_s`` keeps NAT and firewalls from silently dropping an idle
session.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import paramiko

from procore_sync.errors import AuthenticationFailed, ConfigError, TransientError
from procore_sync.secrets import reveal
from procore_sync.source_config import FolderDropConfig, SftpDropConfig

MARKER = ".done"
PROCESSING = "processing"


class DropAuthenticationFailed(AuthenticationFailed):
    hint = "check the SFTP username and its password or key in PROCORE_SYNC_SOURCES."


class DropUnreachable(TransientError):
    hint = "check that the SFTP server is up and reachable from here; the next run tries again."


@dataclass(frozen=True)
class Stamp:
    """What tells one version of a file from another without reading it."""

    size: int
    mtime: float  # seconds; whole seconds over SFTP


def _claim_of(name: str) -> str:
    return f"{PROCESSING}/{name}.csv"


def _archive_name(name: str, stamp: datetime, taken: set[str], suffix: str = "") -> str:
    base = f"{name}-{stamp.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}{suffix}"
    candidate, n = f"{base}.csv", 1
    while candidate in taken:  # never overwrite an earlier archive
        n += 1
        candidate = f"{base}-{n}.csv"
    return candidate


class Drop(ABC):
    """The upload protocol (module docstring), written once over a few file operations on paths
    relative to the drop's folder, which each kind of drop provides."""

    marker_mode: bool
    archive_folder: str

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def _is_file(self, path: str) -> bool: ...

    @abstractmethod
    def _stamp(self, path: str) -> Stamp | None:
        """The size and modification time of a file; None when there is no file."""

    @abstractmethod
    def _names(self, folder: str) -> set[str]:
        """The names in ``folder``, which is created when missing."""

    @abstractmethod
    def _rename(self, source: str, target: str) -> bool:
        """Rename without overwriting: False, and nothing moved, when ``target`` exists."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Remove a file; a file already gone is fine."""

    @abstractmethod
    def _touch(self, path: str) -> None: ...

    @abstractmethod
    def _get(self, path: str, local: Path) -> None: ...

    # The stamp of each claimed upload when it was claimed (module docstring).
    _claimed_as: dict[str, Stamp | None]

    def close(self) -> None:
        pass

    def ready(self, name: str) -> bool:
        """Whether a complete upload of ``name`` is waiting in the drop."""
        file = self._stamp(f"{name}.csv")
        if file is None or not self.marker_mode:
            return file is not None
        marker = self._stamp(f"{name}.csv{MARKER}")
        # A marker older than the file was written for an earlier version of it.
        return marker is not None and marker.mtime >= file.mtime

    def claimed(self, name: str) -> bool:
        """Whether an upload of ``name`` is claimed: being synced, or left by a run that died."""
        return self._is_file(_claim_of(name))

    def claim(self, name: str, now: datetime) -> bool:
        """Take the newest complete upload into ``processing/``; True when there is one to read
        (also an earlier claim whose run never finished)."""
        if not self.ready(name):
            if self.marker_mode and not self._is_file(f"{name}.csv"):
                self._remove(f"{name}.csv{MARKER}")  # a claim interrupted before its marker went
            resumed = self.claimed(name)
            if resumed:  # a killed run's claim: its stamp from now on
                self._claimed_as[name] = self._stamp(_claim_of(name))
            return resumed
        self._names(PROCESSING)
        if self.claimed(name):
            self._move_to_archive(_claim_of(name), name, now, suffix="-superseded")
        stamp = self._stamp(f"{name}.csv")
        if not self._rename(f"{name}.csv", _claim_of(name)):
            raise ConfigError(f"cannot claim {name}.csv in {self.describe()}: {_claim_of(name)} appeared meanwhile")
        self._remove(f"{name}.csv{MARKER}")
        self._claimed_as[name] = stamp
        return True

    def fetch(self, name: str, into: Path) -> Path | None:
        """A local copy of the claimed upload; None when it changed since the claim (it is still
        being written: it goes back where it was uploaded, without its marker)."""
        if not self.claimed(name):
            raise ConfigError(f"no claimed upload of {name}.csv in {self.describe()}")
        into.mkdir(parents=True, exist_ok=True)
        local = into / f"{name}.csv"
        self._get(_claim_of(name), local)
        if self._still_written(name):
            local.unlink(missing_ok=True)
            return None
        return local

    def archive(self, name: str, stamp: datetime) -> str | None:
        """The claimed upload was synced: keep it in the archive folder; its path there. None when
        it changed after it was claimed: a newer upload written into it stays in the drop."""
        if self._still_written(name):
            return None
        self._claimed_as.pop(name, None)
        return self._move_to_archive(_claim_of(name), name, stamp)

    def _still_written(self, name: str) -> bool:
        """Whether the claimed file changed since the claim; if so it goes back unmarked (or, when
        a newer upload took its name, stays claimed, to be superseded at the next claim)."""
        if name not in self._claimed_as or self._stamp(_claim_of(name)) == self._claimed_as[name]:
            return False
        del self._claimed_as[name]
        self._rename(_claim_of(name), f"{name}.csv")
        return True

    def release(self, name: str) -> bool:
        """The claimed upload was not accepted: back where it was uploaded, with its marker, for
        the next run; left claimed (superseded at the next claim) when a newer upload is there."""
        self._claimed_as.pop(name, None)
        if not self.claimed(name) or not self._rename(_claim_of(name), f"{name}.csv"):
            return False
        if self.marker_mode:
            self._touch(f"{name}.csv{MARKER}")
        return True

    def _move_to_archive(self, path: str, name: str, stamp: datetime, suffix: str = "") -> str:
        while True:  # a name taken meanwhile is never overwritten: choose the next one
            target = f"{self.archive_folder}/{_archive_name(name, stamp, self._names(self.archive_folder), suffix)}"
            if self._rename(path, target):
                return target


class FolderDrop(Drop):
    def __init__(self, config: FolderDropConfig) -> None:
        self.config = config
        self.folder = config.folder
        self.marker_mode, self.archive_folder = config.ready == "marker", config.archive_folder
        self._claimed_as = {}

    def describe(self) -> str:
        return f"folder {self.folder}"

    def _is_file(self, path: str) -> bool:
        return (self.folder / path).is_file()

    def _stamp(self, path: str) -> Stamp | None:
        try:
            found = (self.folder / path).stat()
        except FileNotFoundError:
            return None
        return Stamp(found.st_size, found.st_mtime_ns / 1e9) if stat.S_ISREG(found.st_mode) else None

    def _names(self, folder: str) -> set[str]:
        (self.folder / folder).mkdir(parents=True, exist_ok=True)
        return {entry.name for entry in (self.folder / folder).iterdir()}

    def _rename(self, source: str, target: str) -> bool:
        # link, then unlink: a rename that fails where the target exists, as on SFTP.
        try:
            os.link(self.folder / source, self.folder / target)
        except FileExistsError:
            return False
        (self.folder / source).unlink()
        return True

    def _remove(self, path: str) -> None:
        (self.folder / path).unlink(missing_ok=True)

    def _touch(self, path: str) -> None:
        (self.folder / path).touch()

    def _get(self, path: str, local: Path) -> None:
        shutil.copyfile(self.folder / path, local)


class SftpDrop(Drop):
    """One SSH connection per drop, opened at the first use."""

    def __init__(self, config: SftpDropConfig) -> None:
        self.config = config
        self.marker_mode, self.archive_folder = config.ready == "marker", config.archive_folder
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._claimed_as = {}

    def describe(self) -> str:
        c = self.config
        return f"sftp://{c.username}@{c.host}:{c.port}/{c.folder.strip('/')}"

    def _path(self, path: str) -> str:
        return str(PurePosixPath(self.config.folder, path))

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._connect()
        return self._sftp

    def _timed_out(self, exc: socket.timeout) -> DropUnreachable:
        """A request the server took and never answered: the session may be mid-answer, so it is
        dropped (the next use opens a new one), and the run is told."""
        self.close()
        return DropUnreachable(f"{self.describe()} did not answer within {self.config.timeout_s:g} s "
                               f"(the SFTP session stays open but the server is silent)")

    def _connect(self) -> paramiko.SFTPClient:
        c = self.config
        if not c.known_hosts.is_file():
            raise ConfigError(f"the known_hosts file {c.known_hosts} for {c.host} does not exist")
        ssh = paramiko.SSHClient()
        ssh.load_host_keys(str(c.known_hosts))
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        key = None
        if c.private_key_path is not None:
            passphrase = reveal(c.private_key_passphrase)
            try:
                key = paramiko.PKey.from_path(c.private_key_path, password=passphrase)
            except (OSError, paramiko.SSHException) as exc:
                raise ConfigError(f"cannot load the SFTP private key {c.private_key_path}: {exc}") from exc
        try:
            ssh.connect(
                c.host, port=c.port, username=c.username, timeout=c.timeout_s, banner_timeout=c.timeout_s,
                auth_timeout=c.timeout_s, pkey=key,
                password=reveal(c.password),
                allow_agent=False, look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            raise ConfigError(f"the SFTP server {c.host}:{c.port} offered a host key that differs from the one in "
                              f"{c.known_hosts}; refused (it may have been replaced, or this is not that server)") from exc
        except paramiko.AuthenticationException as exc:
            raise DropAuthenticationFailed(f"SFTP authentication failed for {c.username}@{c.host}:{c.port}") from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise ConfigError(f"the SFTP server {c.host}:{c.port} is not in {c.known_hosts}; add its host key "
                                  "(ssh-keyscan, checked with the server's owner); it is never accepted blindly") from exc
            raise DropUnreachable(f"SFTP server {c.host}:{c.port}: {exc}") from exc
        except (OSError, socket.timeout) as exc:
            raise DropUnreachable(f"SFTP server {c.host}:{c.port} unreachable: {exc}") from exc
        self._ssh = ssh
        transport = ssh.get_transport()
        if transport is not None and c.keepalive_s:
            transport.set_keepalive(c.keepalive_s)
        try:
            sftp = ssh.open_sftp()
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            raise DropUnreachable(f"SFTP server {c.host}:{c.port} opened no SFTP session: {exc}") from exc
        # Without this, a request the server takes and never answers waits forever.
        sftp.get_channel().settimeout(c.timeout_s)
        return sftp

    @contextmanager
    def _request(self) -> Iterator[paramiko.SFTPClient]:
        """The session, for one operation whose every wait has the limit ``timeout_s``."""
        try:
            yield self._client()
        except socket.timeout as exc:
            raise self._timed_out(exc) from exc

    def _is_file(self, path: str) -> bool:
        with self._request() as sftp:
            try:
                return stat.S_ISREG(sftp.stat(self._path(path)).st_mode or 0)
            except FileNotFoundError:
                return False

    def _stamp(self, path: str) -> Stamp | None:
        with self._request() as sftp:
            try:
                found = sftp.stat(self._path(path))
            except FileNotFoundError:
                return None
        if not stat.S_ISREG(found.st_mode or 0):
            return None
        return Stamp(found.st_size or 0, float(found.st_mtime or 0))

    def _names(self, folder: str) -> set[str]:
        with self._request() as sftp:
            try:
                return set(sftp.listdir(self._path(folder)))
            except FileNotFoundError:
                sftp.mkdir(self._path(folder))
                return set()

    def _rename(self, source: str, target: str) -> bool:
        # SFTP's standard rename refuses an existing target; tell that apart from a missing source.
        with self._request() as sftp:
            try:
                sftp.rename(self._path(source), self._path(target))
            except socket.timeout:
                raise
            except OSError:
                if self._is_file(target) and self._is_file(source):
                    return False
                raise
        return True

    def _remove(self, path: str) -> None:
        with self._request() as sftp:
            try:
                sftp.remove(self._path(path))
            except FileNotFoundError:
                pass

    def _touch(self, path: str) -> None:
        with self._request() as sftp, sftp.open(self._path(path), "w"):
            pass

    def _get(self, path: str, local: Path) -> None:
        with self._request() as sftp:
            sftp.get(self._path(path), str(local))

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = self._sftp = None
