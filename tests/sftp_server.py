"""A real SFTP server for tests, in this process: asyncssh on 127.0.0.1, a free port, chrooted to
a temporary folder, one user who may log in with a password or a key, and a known_hosts file
that names the server's host key (what an operator would get from ``ssh-keyscan``).

``stall`` is a switch: while it is set, the server keeps its connections and sessions open but
answers no SFTP request (a server that hangs mid-session, as a wedged NAS or a dead link
would), so tests can show that every read and write of a drop has a time limit."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

USER, PASSWORD = "erp-upload", "s3cret-Upload-Pass"


@dataclass(frozen=True)
class SftpServer:
    host: str
    port: int
    username: str
    password: str
    key_path: Path  # the user's private key (OpenSSH format)
    known_hosts: Path
    root: Path  # what the server serves
    stall: threading.Event  # set: SFTP requests get no answer (module docstring)

    def config(self, **extra: object) -> dict[str, object]:
        """A ``kind: sftp`` source or drop config for this server, with a password."""
        return {"kind": "sftp", "host": self.host, "port": self.port, "username": self.username,
                "password": self.password, "known_hosts": str(self.known_hosts), **extra}

    def upload(self, name: str, text: str, *, marker: bool = True) -> None:
        """``<name>.csv`` written as an uploader would: the file, then its ``.done`` marker."""
        (self.root / f"{name}.csv").write_text(text, encoding="utf-8")
        if marker:
            (self.root / f"{name}.csv.done").write_text("", encoding="utf-8")


class _Server(asyncssh.SSHServer):
    open: set[asyncssh.SSHServerConnection] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.open.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open.difference_update([c for c in self.open if c.is_closed()])

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


class _StallingSftp(asyncssh.SFTPServer):
    """asyncssh's SFTP server, chrooted, whose requests wait forever while ``stall`` is set."""

    stall: threading.Event


def _stalling(name: str):  # type: ignore[no-untyped-def]
    async def method(self: _StallingSftp, *args: object) -> object:
        if self.stall.is_set():
            await asyncio.Event().wait()  # never set: the request is never answered
        result = getattr(asyncssh.SFTPServer, name)(self, *args)
        return await result if inspect.isawaitable(result) else result

    return method


for _name in ("open", "read", "write", "close", "stat", "lstat", "fstat", "rename", "posix_rename", "remove",
              "mkdir"):
    setattr(_StallingSftp, _name, _stalling(_name))


@contextmanager
def sftp_server(folder: Path) -> Iterator[SftpServer]:
    root, keys = folder / "served", folder / "keys"
    root.mkdir(parents=True)
    keys.mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = keys / "id_ed25519"
    key_path.write_bytes(user_key.export_private_key())
    key_path.chmod(0o600)
    loop = asyncio.new_event_loop()
    stall = threading.Event()

    def sftp(channel: asyncssh.SSHServerChannel) -> _StallingSftp:
        server = _StallingSftp(channel, chroot=str(root).encode())
        server.stall = stall
        return server

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], server_factory=_Server,
            authorized_client_keys=asyncssh.import_authorized_keys(user_key.export_public_key().decode()),
            sftp_factory=sftp,
        )

    acceptor = loop.run_until_complete(start())
    port = acceptor.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, name="sftp-server", daemon=True)
    thread.start()
    known_hosts = keys / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    try:
        yield SftpServer("127.0.0.1", port, USER, PASSWORD, key_path, known_hosts, root, stall)
    finally:
        stall.clear()

        async def stop() -> None:
            acceptor.close()
            await acceptor.wait_closed()
            for connection in list(_Server.open):  # clients that never said goodbye
                connection.close()
                await connection.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
