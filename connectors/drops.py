"""Template drops: where CSV templates are uploaded, read only once complete, archived after use.

A drop is a folder, local (``FolderDrop``) or on an SFTP server (``SftpDrop``), where the system
of record (or a person) puts ``<table>.csv``. Two conventions say when a file is complete, so a
half-uploaded file is never read:

- ``ready="marker"`` (default): the uploader writes ``<table>.csv``, then an empty
  ``<table>.csv.done`` beside it. The file counts only once its marker exists.
- ``ready="rename"``: the uploader writes under a temporary name (``<table>.csv.part``, or any
  name starting with ``.``) and renames it to ``<table>.csv`` when complete (a rename is atomic
  on one file system and on SFTP servers).

After a run synced an upload, ``archive`` moves the file (and its marker) into
``archive_folder`` as ``<table>-<UTC stamp>.csv``, so the drop holds only what is new.

SFTP: the server's host key must be in ``known_hosts``; an unknown or changed key is refused,
never accepted. Passwords and key passphrases are secrets, redacted from every message.
"""

from __future__ import annotations

import shutil
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

import paramiko
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from procore_sync.errors import AuthenticationFailed, ConfigError, TransientError
from procore_sync.redact import register_secret

MARKER = ".done"


class FolderDropConfig(BaseModel):
    """Templates uploaded into a local (or mounted) folder."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder"]
    folder: Path
    archive_folder: str = "archive"
    ready: Literal["marker", "rename"] = "marker"


class SftpDropConfig(BaseModel):
    """Templates uploaded to a folder on an SFTP server."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sftp"]
    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    username: str
    password: SecretStr | None = None
    private_key_path: Path | None = None
    private_key_passphrase: SecretStr | None = None
    known_hosts: Path
    folder: str = "."
    archive_folder: str = "archive"
    ready: Literal["marker", "rename"] = "marker"
    timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_way_in(self) -> "SftpDropConfig":
        if (self.password is None) == (self.private_key_path is None):
            raise ValueError("give exactly one of password and private_key_path")
        for secret in (self.password, self.private_key_passphrase):
            if secret is not None:
                register_secret(secret.get_secret_value())
        return self


class DropAuthenticationFailed(AuthenticationFailed):
    hint = "check the SFTP username and its password or key in PROCORE_SYNC_SOURCES."


class DropUnreachable(TransientError):
    hint = "check that the SFTP server is up and reachable from here; the next run tries again."


class Drop(Protocol):
    def ready(self, name: str) -> bool: ...

    def fetch(self, name: str, into: Path) -> Path: ...

    def archive(self, name: str, stamp: datetime) -> str: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def _archive_name(name: str, stamp: datetime, taken: set[str]) -> str:
    base = f"{name}-{stamp.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    candidate, n = f"{base}.csv", 1
    while candidate in taken:  # never overwrite an earlier archive
        n += 1
        candidate = f"{base}-{n}.csv"
    return candidate


class FolderDrop:
    def __init__(self, config: FolderDropConfig) -> None:
        self.config = config
        self.folder = config.folder

    def describe(self) -> str:
        return f"folder {self.folder}"

    def ready(self, name: str) -> bool:
        file = self.folder / f"{name}.csv"
        if self.config.ready == "marker":
            return file.is_file() and (self.folder / f"{name}.csv{MARKER}").is_file()
        return file.is_file()

    def fetch(self, name: str, into: Path) -> Path:
        if not self.ready(name):
            raise ConfigError(f"no complete upload of {name}.csv in {self.describe()}")
        into.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(self.folder / f"{name}.csv", into / f"{name}.csv"))

    def archive(self, name: str, stamp: datetime) -> str:
        archive = self.folder / self.config.archive_folder
        archive.mkdir(parents=True, exist_ok=True)
        target = archive / _archive_name(name, stamp, {p.name for p in archive.iterdir()})
        (self.folder / f"{name}.csv").replace(target)
        (self.folder / f"{name}.csv{MARKER}").unlink(missing_ok=True)
        return str(target)

    def close(self) -> None:
        pass


class SftpDrop:
    """One SSH connection per drop, opened at the first use."""

    def __init__(self, config: SftpDropConfig) -> None:
        self.config = config
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def describe(self) -> str:
        c = self.config
        return f"sftp://{c.username}@{c.host}:{c.port}/{c.folder.strip('/')}"

    def _path(self, *parts: str) -> str:
        return str(PurePosixPath(self.config.folder, *parts))

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._connect()
        return self._sftp

    def _connect(self) -> paramiko.SFTPClient:
        c = self.config
        if not c.known_hosts.is_file():
            raise ConfigError(f"the known_hosts file {c.known_hosts} for {c.host} does not exist")
        ssh = paramiko.SSHClient()
        ssh.load_host_keys(str(c.known_hosts))
        ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
        key = None
        if c.private_key_path is not None:
            passphrase = c.private_key_passphrase.get_secret_value() if c.private_key_passphrase else None
            try:
                key = paramiko.PKey.from_path(c.private_key_path, password=passphrase)
            except (OSError, paramiko.SSHException) as exc:
                raise ConfigError(f"cannot load the SFTP private key {c.private_key_path}: {exc}") from exc
        try:
            ssh.connect(
                c.host, port=c.port, username=c.username, timeout=c.timeout_s, banner_timeout=c.timeout_s,
                auth_timeout=c.timeout_s, pkey=key,
                password=c.password.get_secret_value() if c.password else None,
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
        return ssh.open_sftp()

    def _exists(self, path: str) -> bool:
        try:
            return stat.S_ISREG(self._client().stat(path).st_mode or 0)
        except FileNotFoundError:
            return False

    def ready(self, name: str) -> bool:
        if not self._exists(self._path(f"{name}.csv")):
            return False
        return self.config.ready == "rename" or self._exists(self._path(f"{name}.csv{MARKER}"))

    def fetch(self, name: str, into: Path) -> Path:
        if not self.ready(name):
            raise ConfigError(f"no complete upload of {name}.csv in {self.describe()}")
        into.mkdir(parents=True, exist_ok=True)
        local = into / f"{name}.csv"
        self._client().get(self._path(f"{name}.csv"), str(local))
        return local

    def archive(self, name: str, stamp: datetime) -> str:
        sftp = self._client()
        archive = self._path(self.config.archive_folder)
        try:
            taken = set(sftp.listdir(archive))
        except FileNotFoundError:
            sftp.mkdir(archive)
            taken = set()
        target = str(PurePosixPath(archive, _archive_name(name, stamp, taken)))
        sftp.rename(self._path(f"{name}.csv"), target)
        try:
            sftp.remove(self._path(f"{name}.csv{MARKER}"))
        except FileNotFoundError:
            pass
        return target

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = self._sftp = None
