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


def _two_profiles(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    monkeypatch.setenv("PROCORE_SYNC_PROFILES_FILE", str(tmp_path / "profiles.toml"))
    (tmp_path / "profiles.toml").write_text("[acme]\ncompany_id = 12\n\n[globex]\ncompany_id = 13\n")


def test_profile_selects_the_companys_settings_for_a_command(tmp_path, monkeypatch) -> None:
    _two_profiles(tmp_path, monkeypatch)
    result = runner.invoke(app, ["--profile", "globex", "status"])
    assert result.exit_code == 0, result.output
    assert f"no state yet at {tmp_path / 'globex' / 'state.duckdb'}" in " ".join(result.output.split())
    base = runner.invoke(app, ["status"])  # no profile: the base settings, as before profiles
    assert f"no state yet at {tmp_path / 'state.duckdb'}" in " ".join(base.output.split())


def test_an_unknown_profile_stops_the_command_naming_the_known(tmp_path, monkeypatch) -> None:
    _two_profiles(tmp_path, monkeypatch)
    result = runner.invoke(app, ["--profile", "initech", "status"])
    assert result.exit_code == 2
    assert "unknown profile 'initech'; known: acme, globex" in " ".join(result.output.split())


def test_deployments_are_rendered_once_per_profile(tmp_path, monkeypatch) -> None:
    _two_profiles(tmp_path, monkeypatch)
    monkeypatch.delenv("PROCORE_SYNC_ALERT_BLOCK", raising=False)
    result = runner.invoke(app, ["deployments"])
    assert result.exit_code == 0, result.output
    names = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("- name: ")]
    assert "acme-vendors" in names and "globex-vendors-full-resync" in names and "vendors" not in names
    only = runner.invoke(app, ["--profile", "acme", "deployments"])
    assert "- name: acme-sync-all" in only.stdout and "globex" not in only.stdout


def test_deployments_flow_goes_with_apply_and_names_a_flow_that_has_deployments(tmp_path, monkeypatch) -> None:
    _two_profiles(tmp_path, monkeypatch)
    alone = runner.invoke(app, ["deployments", "--flow", "vendors"])
    assert alone.exit_code == 2 and "add --apply" in " ".join(alone.output.split())
    # Refused before anything is installed: the automations need a Prefect server, and none answers here.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    typo = runner.invoke(app, ["deployments", "--apply", "--flow", "vendors", "--flow", "supliers"])
    assert typo.exit_code == 2
    said = " ".join(typo.output.split())
    assert "no deployment of the flow(s) supliers; known:" in said and "retry-failed-runs" in said
