"""Uploads staged where the state is shared: two hosts (two homes, one PostgreSQL state, a fresh
schema of the session's cluster per test) read one accepted copy of a table and never hold one
table's claim at once; a killed process's claim is free again."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.drops import FolderDrop
from connectors.postgres_db import close_pools
from connectors.sources import FolderStaging, SharedStaging, UploadSource, staging_of
from connectors.state import StateStore
from procore_sync.settings import Settings
from procore_sync.source_config import FolderDropConfig
from tests.conftest import StatePostgres

STAMP = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
PEOPLE = "resource_people"


@pytest.fixture
def state_url(state_postgres: StatePostgres) -> Iterator[str]:
    url = state_postgres.fresh_url()
    yield url
    close_pools(url)


@pytest.fixture
def drop_folder(tmp_path: Path) -> Path:
    """The drop both hosts see (an SFTP server's folder, say)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def host(name: str, tmp_path: Path, drop_folder: Path, state_url: str) -> UploadSource:
    """One host's view: its own home folder, the shared drop and the shared state."""
    drop = FolderDrop(FolderDropConfig(kind="folder", folder=drop_folder))
    return UploadSource(drop, SharedStaging(tmp_path / name / "uploads", lambda: StateStore(state_url)))


def upload(folder: Path, text: str) -> None:
    (folder / f"{PEOPLE}.csv").write_text(text)
    (folder / f"{PEOPLE}.csv.done").write_text("")


def people(source: UploadSource) -> list[str]:
    return [row.data["employee_number"] for row in source.read(PEOPLE)]


def test_the_second_host_reads_the_first_hosts_accepted_upload(tmp_path: Path, drop_folder: Path,
                                                               state_url: str) -> None:
    first, second = (host(name, tmp_path, drop_folder, state_url) for name in ("a", "b"))
    assert not second.available(PEOPLE)
    upload(drop_folder, "employee_number\nE-1\nE-2\n")
    assert first.take(PEOPLE, STAMP) is not None
    assert not second.available(PEOPLE), "a pending upload is not the truth until accepted"
    first.accept(PEOPLE, STAMP)
    assert second.available(PEOPLE) and people(second) == ["E-1", "E-2"]
    assert not (tmp_path / "b" / "uploads" / "pending").exists(), "the second host took nothing itself"
    (tmp_path / "b" / "uploads" / "current" / f"{PEOPLE}.csv").unlink()  # cleaned up under it
    assert people(second) == ["E-1", "E-2"], "fetched again"
    # The next upload, synced by the second host: the first host's own copy is stale, not read.
    upload(drop_folder, "employee_number\nE-3\n")
    assert second.take(PEOPLE, STAMP) is not None
    second.accept(PEOPLE, STAMP)
    assert people(first) == ["E-3"]
    found = StateStore(state_url).accepted_upload(PEOPLE)
    assert found is not None and found.content == b"employee_number\nE-3\n"
    assert found.source == f"{PEOPLE}.csv from folder {drop_folder}"


def test_one_host_at_a_time_holds_a_tables_claim(tmp_path: Path, drop_folder: Path, state_url: str) -> None:
    first, second = (host(name, tmp_path, drop_folder, state_url) for name in ("a", "b"))
    upload(drop_folder, "employee_number\nE-1\n")
    assert first.take(PEOPLE, STAMP) is not None
    assert second.take(PEOPLE, STAMP) is None and second.in_use(PEOPLE)
    assert not first.in_use(PEOPLE), "its own claim is not another run's"
    first.discard(PEOPLE)
    # Given back at once, not when the server gets round to ending the session: each probe
    # takes the claim and gives it back, and the next one finds it free.
    assert not any(second.in_use(PEOPLE) for _ in range(30))
    assert second.take(PEOPLE, STAMP) is not None, "given back: the other host takes it"
    assert first.in_use(PEOPLE)
    second.accept(PEOPLE, STAMP)
    assert not first.in_use(PEOPLE)


def test_a_killed_process_frees_its_claim(tmp_path: Path, drop_folder: Path, state_url: str) -> None:
    upload(drop_folder, "employee_number\nE-1\n")
    code = textwrap.dedent(f"""
        import datetime, time
        from pathlib import Path
        from tests.test_upload_staging import host
        source = host("a", Path({str(tmp_path)!r}), Path({str(drop_folder)!r}), {state_url!r})
        assert source.take({PEOPLE!r}, {STAMP!r}) is not None
        print("held", flush=True)
        time.sleep(600)  # killed long before
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        other = host("b", tmp_path, drop_folder, state_url)
        assert other.in_use(PEOPLE) and other.take(PEOPLE, STAMP) is None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    deadline = time.monotonic() + 10  # the server ends the session once it reads the closed socket
    while other.in_use(PEOPLE) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not other.in_use(PEOPLE)
    assert other.take(PEOPLE, STAMP) is not None, "the killed run's claim is resumed"
    assert people(other) == ["E-1"]


def test_a_copy_accepted_before_the_state_was_shared_is_shared(tmp_path: Path, drop_folder: Path,
                                                               state_url: str) -> None:
    # The host that ran alone on a DuckDB state kept its accepted copy as a file.
    current = tmp_path / "a" / "uploads" / "current"
    current.mkdir(parents=True)
    (current / f"{PEOPLE}.csv").write_text("employee_number\nE-9\n")
    first, second = (host(name, tmp_path, drop_folder, state_url) for name in ("a", "b"))
    assert not second.available(PEOPLE)
    assert people(first) == ["E-9"]
    assert people(second) == ["E-9"]


def test_the_staging_follows_the_state(tmp_path: Path) -> None:
    alone = Settings(home=tmp_path)
    assert isinstance(staging_of(alone), FolderStaging)
    shared = Settings(home=tmp_path, state_url="postgresql://sync@db.internal/state")
    staging = staging_of(shared)
    assert isinstance(staging, SharedStaging) and staging.pending_dir == tmp_path / "uploads" / "pending"
