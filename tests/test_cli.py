"""The command line: help, the sample ERP, status and a clear error for an unknown entity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from app.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "sync", "sandbox", "sample-erp", "status", "history"):
        assert command in result.output


def test_sample_erp_writes_the_database_templates_and_expectations(tmp_path) -> None:
    result = runner.invoke(app, ["sample-erp", "--scale", "0.1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "erp.duckdb").exists()
    assert (tmp_path / "templates" / "suppliers.csv").exists()
    assert json.loads((tmp_path / "expected.json").read_text())["suppliers"]["rows"] == 50


def test_status_without_state_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0
    assert "no state yet" in result.output


def test_unknown_entity_is_a_clear_error(tmp_path) -> None:
    # In a child process: Prefect's log handlers would outlive CliRunner's captured streams.
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "sync", "suppliers"],
        env=os.environ | {"PROCORE_SYNC_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown entity suppliers; known: vendors" in " ".join(result.stderr.split())
