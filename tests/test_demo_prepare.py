"""The demo's preparation: the sample ERP once, and the HR drop its Resource Planning people come
from, unless the settings name sources of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.demo import DemoOptions, prepare
from app.prefect_server import PrefectServer, free_port, port_is_free
from procore_sync.errors import SyncError
from procore_sync.settings import Settings

SMALL = DemoOptions(scale=0.05)


def test_the_hr_system_uploads_once_and_the_drop_becomes_the_people_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    # "{}": no sources of one's own; set through monkeypatch, so what prepare() sets is undone.
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", "{}")
    settings, drop = prepare(Settings(), SMALL)
    assert drop == (tmp_path / "drops" / "hr").resolve()
    assert (drop / "resource_people.csv").read_bytes() == (tmp_path / "erp" / "templates" / "resource_people.csv").read_bytes()
    assert (drop / "resource_people.csv.done").exists()
    assert settings.sources["resource_people"].folder == drop  # type: ignore[union-attr]
    # The demo's served flow runs build their settings from the environment: the same source.
    assert Settings().sources == settings.sources
    (drop / "resource_people.csv").unlink()  # the first sync took and archived it
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", "{}")  # the next demo is a new process
    assert prepare(Settings(), SMALL)[1] == drop and not (drop / "resource_people.csv").exists(), "uploaded once"


def test_an_integrators_own_sources_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    own = {"resource_people": {"kind": "folder", "folder": str(tmp_path / "theirs")}}
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", json.dumps(own))
    settings, drop = prepare(Settings(), SMALL)
    assert drop is None and settings.sources == Settings().sources
    assert not (tmp_path / "drops").exists()
    assert json.loads(os.environ["PROCORE_SYNC_SOURCES"]) == own


def test_the_demos_prefect_server_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    """The server runs in a session of its own (so that Ctrl-C reaches the demo first); a demo
    ended by SIGTERM or SIGKILL, which runs none of its cleanup, must not leave it running."""
    port = free_port()
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from app.prefect_server import PrefectServer; "
         f"PrefectServer(Path(sys.argv[1]), port={port}).start(); print('up', flush=True); time.sleep(600)",
         str(tmp_path / "prefect")], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None and starter.stdout.readline().strip() == "up"
        assert not port_is_free(port)
        starter.kill()
        starter.wait(timeout=10)
        deadline = time.monotonic() + 30  # a bound on its shutdown, reached only if it lives on
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert port_is_free(port), "the Prefect server outlived the process that started it"
    finally:
        starter.kill()


def test_a_prefect_server_that_cannot_start_says_why_and_is_not_left_running(tmp_path: Path) -> None:
    """The demo's server on a database it cannot reach (an operator's wrong
    ``PREFECT_SERVER_DATABASE_CONNECTION_URL``): the operator reads the server's own complaint and
    where its log is, as one of procore-sync's errors (no traceback of ours), and nothing is left
    on the port."""
    port, nobody = free_port(), free_port()  # nothing listens on the second one
    server = PrefectServer(tmp_path / "prefect", port=port, env={
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{nobody}/none"})
    with pytest.raises(SyncError) as raised:
        server.start()
    assert str(tmp_path / "prefect" / "server.log") in str(raised.value)
    assert f"Connect call failed ('127.0.0.1', {nobody})" in str(raised.value), "the server's own words"
    assert server.process is None and port_is_free(port)
