"""Template drops over a real SFTP server (asyncssh, in this process) and a local folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
import pytest

from connectors.drops import Drop, FolderDrop, SftpDrop
from connectors.sources import UploadSource
from procore_sync.errors import ConfigError
from procore_sync.source_config import FolderDropConfig, SftpDropConfig
from tests.sftp_server import SftpServer, sftp_server

STAMP = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    with sftp_server(tmp_path_factory.mktemp("sftp")) as running:
        yield running


@pytest.fixture(params=["sftp", "folder"])
def drop_at(request: pytest.FixtureRequest, server: SftpServer, tmp_path: Path) -> Iterator[tuple[Drop, Path]]:
    """A drop and the local folder behind it (the SFTP server's files, or the folder itself)."""
    if request.param == "sftp":
        folder = server.root / tmp_path.name
        folder.mkdir()
        drop: Drop = SftpDrop(SftpDropConfig(**server.config(folder=tmp_path.name)))
    else:
        folder = tmp_path / "drop"
        folder.mkdir()
        drop = FolderDrop(FolderDropConfig(kind="folder", folder=folder))
    yield drop, folder
    drop.close()


def upload(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.csv").write_text(text)
    (folder / f"{name}.csv.done").write_text("")


def test_a_file_counts_only_once_its_marker_lands(drop_at: tuple[Drop, Path], tmp_path: Path) -> None:
    drop, folder = drop_at
    (folder / "suppliers.csv").write_text("supplier_code,name\nS-1,Ace\n")
    assert not drop.ready("suppliers")
    assert drop.claim("suppliers", STAMP) is False
    with pytest.raises(ConfigError, match="no claimed upload of suppliers.csv"):
        drop.fetch("suppliers", tmp_path / "local")
    (folder / "suppliers.csv.done").write_text("")
    assert drop.ready("suppliers")
    assert drop.claim("suppliers", STAMP) is True
    assert not drop.ready("suppliers") and not (folder / "suppliers.csv.done").exists()
    local = drop.fetch("suppliers", tmp_path / "local")
    assert local.read_text() == "supplier_code,name\nS-1,Ace\n"


def test_archive_moves_the_claimed_file_and_never_overwrites(drop_at: tuple[Drop, Path]) -> None:
    drop, folder = drop_at
    for round_ in (1, 2):
        upload(folder, "employees", f"employee_number\nE-{round_}\n")
        assert drop.claim("employees", STAMP)
        archived = drop.archive("employees", STAMP)
        assert not drop.ready("employees") and not (folder / "processing" / "employees.csv").exists()
    archive = sorted(p.name for p in (folder / "archive").iterdir())
    assert archive == ["employees-20261124T063000Z-2.csv", "employees-20261124T063000Z.csv"]
    assert Path(archived).name == "employees-20261124T063000Z-2.csv"
    assert (folder / "archive" / archive[1]).read_text() == "employee_number\nE-1\n"


def test_an_upload_made_during_a_run_is_neither_archived_nor_lost(drop_at: tuple[Drop, Path]) -> None:
    drop, folder = drop_at
    upload(folder, "projects", "project_number\nP-1\n")
    assert drop.claim("projects", STAMP)
    upload(folder, "projects", "project_number\nP-2\n")  # the next upload, while the run works
    archived = drop.archive("projects", STAMP)
    assert (folder / "archive" / Path(archived).name).read_text() == "project_number\nP-1\n"
    assert drop.ready("projects") and (folder / "projects.csv").read_text() == "project_number\nP-2\n"


def test_an_upload_not_accepted_goes_back_unless_a_newer_one_came(drop_at: tuple[Drop, Path]) -> None:
    drop, folder = drop_at
    upload(folder, "vendors", "supplier_code\nS-1\n")
    assert drop.claim("vendors", STAMP)
    assert drop.release("vendors") is True
    assert drop.ready("vendors") and (folder / "vendors.csv").read_text() == "supplier_code\nS-1\n"
    assert drop.claim("vendors", STAMP)
    upload(folder, "vendors", "supplier_code\nS-2\n")
    assert drop.release("vendors") is False, "the newer upload stays as it is"
    assert (folder / "vendors.csv").read_text() == "supplier_code\nS-2\n"
    assert drop.claim("vendors", STAMP)  # the newer one; the older is kept, superseded
    assert (folder / "processing" / "vendors.csv").read_text() == "supplier_code\nS-2\n"
    assert [p.name for p in (folder / "archive").iterdir()] == ["vendors-20261124T063000Z-superseded.csv"]


def test_a_claim_of_a_killed_run_is_resumed(drop_at: tuple[Drop, Path], tmp_path: Path) -> None:
    drop, folder = drop_at
    upload(folder, "cost_types", "cost_type\nL\n")
    assert drop.claim("cost_types", STAMP)  # ...and the process dies here
    assert drop.claim("cost_types", STAMP), "the next run picks it up"
    assert drop.fetch("cost_types", tmp_path / "again").read_text() == "cost_type\nL\n"


def test_two_runs_never_hold_one_upload(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    upload(folder, "resource_people", "employee_number\nE-1\n")
    first, second = (UploadSource(FolderDrop(FolderDropConfig(kind="folder", folder=folder)), tmp_path / "home")
                     for _ in range(2))
    assert first.take("resource_people", STAMP) is not None
    assert second.take("resource_people", STAMP) is None and second.in_use("resource_people")
    first.accept("resource_people", STAMP)
    assert not second.in_use("resource_people")
    assert second.take("resource_people", STAMP) is None, "nothing new after the first run archived it"
    assert [row.data["employee_number"] for row in second.read("resource_people")] == ["E-1"]


def test_rename_mode_reads_the_final_name_only(server: SftpServer, tmp_path: Path) -> None:
    folder = server.root / "renamed"
    folder.mkdir()
    drop = SftpDrop(SftpDropConfig(**server.config(folder="renamed", ready="rename")))
    try:
        (folder / "projects.csv.part").write_text("project_number\nP-1\n")
        assert not drop.ready("projects")
        (folder / "projects.csv.part").rename(folder / "projects.csv")
        assert drop.ready("projects")
    finally:
        drop.close()


def test_key_authentication(server: SftpServer) -> None:
    config = server.config()
    del config["password"]
    drop = SftpDrop(SftpDropConfig(**config, private_key_path=server.key_path))
    try:
        assert drop.ready("nothing") is False
    finally:
        drop.close()


def test_a_wrong_password_fails_without_showing_it(server: SftpServer) -> None:
    drop = SftpDrop(SftpDropConfig(**server.config(password="not-the-Password-9")))
    with pytest.raises(ConfigError) as raised:
        drop.ready("suppliers")
    assert f"SFTP authentication failed for {server.username}@127.0.0.1" in str(raised.value)
    assert "not-the-Password-9" not in str(raised.value)


def test_an_unknown_host_key_is_refused(server: SftpServer, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {other}\n")
    drop = SftpDrop(SftpDropConfig(**server.config(known_hosts=str(known_hosts))))
    with pytest.raises(ConfigError, match="host key that differs"):
        drop.ready("suppliers")
    known_hosts.write_text("")
    drop = SftpDrop(SftpDropConfig(**server.config(known_hosts=str(known_hosts))))
    with pytest.raises(ConfigError, match="is not in .*known_hosts"):
        drop.ready("suppliers")


def test_exactly_one_way_in() -> None:
    with pytest.raises(ValueError, match="exactly one of password and private_key_path"):
        SftpDropConfig(kind="sftp", host="h", username="u", known_hosts=Path("k"))


def test_the_health_check_tells_what_the_drop_holds(tmp_path: Path) -> None:
    from flows.health import upload_status

    folder = tmp_path / "drop"
    folder.mkdir()
    source, other = (UploadSource(FolderDrop(FolderDropConfig(kind="folder", folder=folder)), tmp_path / "home")
                     for _ in range(2))
    assert upload_status(source, "projects") == "reachable, no new upload"
    upload(folder, "projects", "project_number\nP-1\n")
    assert upload_status(source, "projects") == "a new upload is waiting"
    source.take("projects", STAMP)
    assert upload_status(other, "projects") == "a run is syncing an upload now"
    source.discard("projects")
    # A process that claims the upload and dies: its lock goes with it, the claim stays.
    code = textwrap.dedent(f"""
        import datetime
        import os
        from pathlib import Path
        from connectors.drops import FolderDrop
        from procore_sync.source_config import FolderDropConfig
        from connectors.sources import UploadSource
        drop = FolderDrop(FolderDropConfig(kind="folder", folder=Path({str(folder)!r})))
        UploadSource(drop, Path({str(tmp_path / "home")!r})).take("projects", {STAMP!r})
        os._exit(0)  # no discard, no accept: killed
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
    assert upload_status(other, "projects").startswith("an upload left in processing/ by a run that did not finish")
    assert other.take("projects", STAMP) is not None, "the next run resumes it"


class SlowWriter:
    """An uploader writing ``path`` in place, one piece each time the test calls ``step``, its
    file open all along (so its writes follow the file when a claim renames it). The first
    piece is written (over what was there) before the constructor returns."""

    def __init__(self, path: Path, pieces: list[str]) -> None:
        self._go, self._written = threading.Semaphore(0), threading.Semaphore(0)
        self._thread = threading.Thread(target=self._write, args=(path, pieces), daemon=True)
        self._thread.start()
        assert self._written.acquire(timeout=10)

    def _write(self, path: Path, pieces: list[str]) -> None:
        with path.open("w") as handle:
            for n, piece in enumerate(pieces):
                if n:
                    self._go.acquire()
                handle.write(piece)
                handle.flush()
                os.fsync(handle.fileno())
                self._written.release()

    def step(self) -> None:
        self._go.release()
        assert self._written.acquire(timeout=10)

    def done(self) -> None:
        self._thread.join(timeout=10)


def test_uploads_are_never_half_read(drop_at: tuple[Drop, Path], tmp_path: Path) -> None:
    drop, folder = drop_at
    path, marker = folder / "suppliers.csv", folder / "suppliers.csv.done"
    upload(folder, "suppliers", "supplier_code,name\nS-1,Ace\n")
    earlier = time.time() - 60
    for each in (path, marker):  # an upload made a minute ago, not yet claimed
        os.utime(each, (earlier, earlier))

    # A newer file written in place over it: the earlier upload's marker must not make it count.
    writer = SlowWriter(path, ["supplier_code,name\n", "S-1,Ace\n", "S-2,Bolt\n", "S-3,Crane\n"])
    assert not drop.ready("suppliers"), "the marker was written for the earlier file"
    assert drop.claim("suppliers", STAMP) is False
    assert not drop.claimed("suppliers")

    # The uploader marks it complete too early and writes on while the run copies it: not read.
    writer.step()
    marker.write_text("")
    assert drop.claim("suppliers", STAMP) is True
    writer.step()  # into the claimed file: the writer's handle followed the rename
    assert drop.fetch("suppliers", tmp_path / "local") is None, "changed since it was claimed"
    assert not drop.claimed("suppliers") and path.is_file(), "back where it was uploaded"
    assert not drop.ready("suppliers"), "and not complete until the uploader marks it again"

    # ...or writes on after the run read it: not archived while being written, it stays.
    marker.write_text("")
    assert drop.claim("suppliers", STAMP) is True
    local = drop.fetch("suppliers", tmp_path / "local")
    assert local is not None and local.read_text() == "supplier_code,name\nS-1,Ace\nS-2,Bolt\n"
    writer.step()
    writer.done()
    assert drop.archive("suppliers", STAMP) is None
    assert not (folder / "archive").exists() or not list((folder / "archive").iterdir())
    assert path.read_text() == "supplier_code,name\nS-1,Ace\nS-2,Bolt\nS-3,Crane\n"

    # Complete and marked: claimed, read and archived whole.
    marker.write_text("")
    assert drop.claim("suppliers", STAMP) is True
    assert drop.fetch("suppliers", tmp_path / "local").read_text().endswith("S-3,Crane\n")
    assert drop.archive("suppliers", STAMP) == "archive/suppliers-20261124T063000Z.csv"
