"""The wrong Procore is refused (issue 12, point 10): the state remembers the Procore environment,
company and ERP it was first used with, and refuses writes to any other pairing until the
operator pairs them (`procore-sync state pair`, recorded in the history)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from connectors.state import StateStore
from flows.health import erp_checks
from app.cli import app
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tests.conftest import SampleErp, settings_env
from tests.support import engine_runtime, run_vendors

pytestmark = pytest.mark.usefixtures("prefect_api")


def renamed_erp(small_erp: SampleErp, folder: Path, key: str) -> Path:
    """A copy of the ERP with supplier ``key`` renamed: a run against it has a write to make."""
    path = folder / "test-erp.duckdb"
    folder.mkdir()
    shutil.copyfile(small_erp.path, path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE suppliers SET name = 'Renamed in the test ERP', updated_at = now() WHERE supplier_code = ?", [key])
    return path


def refused(settings: Settings) -> str:
    """The message of a run that must stop before any write."""
    state = run_vendors(engine_runtime(settings), return_state=True)
    last = StateStore(settings.state_path).runs("vendors", limit=1)[0]
    assert state.is_failed() and last.status == "failed", last
    assert last.write_calls == 0 and last.counts["updated"] == 0
    return last.message or ""


def test_the_wrong_procore_is_refused(small_erp: SampleErp, sandbox: SandboxServer, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    paired = settings_env(monkeypatch, sandbox.url, small_erp.path, home)
    assert run_vendors(engine_runtime(paired)).status == "completed"
    synced = [k for k, s in StateStore(paired.state_path).record_states("vendors").items() if s.status == "ok"]

    # A test ERP against the same Procore.
    other_erp = renamed_erp(small_erp, tmp_path / "test", synced[0])
    message = refused(settings_env(monkeypatch, sandbox.url, other_erp, home))
    assert str(small_erp.path) in message and str(other_erp) in message, message
    assert "procore-sync state pair" in message
    [check] = [c for c in erp_checks(Settings()) if c.check == "pairing"]
    assert check.status == "Failed" and str(other_erp) in check.detail

    # Another Procore (a sandbox on another host) with the paired ERP.
    with start_in_thread(SandboxConfig(), host="127.0.0.2") as elsewhere:
        message = refused(settings_env(monkeypatch, elsewhere.url, small_erp.path, home))
    assert "http://127.0.0.1" in message and "http://127.0.0.2" in message, message

    # A local sandbox restarted on another port is the same environment (tasks/pairing.py).
    with start_in_thread(SandboxConfig()) as restarted:
        assert run_vendors(engine_runtime(settings_env(monkeypatch, restarted.url, small_erp.path, home))).status == "completed"

    # The operator pairs the state with the test ERP: recorded, and then that is the pairing.
    testing = settings_env(monkeypatch, sandbox.url, other_erp, home)
    result = CliRunner().invoke(app, ["state", "pair"])
    assert result.exit_code == 0, result.output
    summary = run_vendors(engine_runtime(testing))
    assert summary.status == "completed" and summary.updated == 1
    history = CliRunner().invoke(app, ["history", "--json"])
    [pairing] = [json.loads(line) for line in history.output.splitlines()
                 if json.loads(line)["action"] == "paired" and json.loads(line)["status"] == "paired by the operator"]
    assert str(other_erp) in pairing["message"]
    refused(settings_env(monkeypatch, sandbox.url, small_erp.path, home))
