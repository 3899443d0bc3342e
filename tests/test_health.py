"""health-check against the real sandbox, a real ERP file and a real Prefect server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from flows import ENTITY_FLOWS, enabled
from connectors.erp_sink import ErpSink
from connectors.postgres_db import close_pools
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.health import health_check, sink_check
from app.runner import run_entities
from procore_sync.settings import Settings
from sandbox.server import SandboxServer
from tests.conftest import SampleErp, settings_env
from tests.support import flow_run_artifacts

pytestmark = pytest.mark.usefixtures("prefect_api")


def rows_of(api_url: str, state) -> dict[str, dict]:  # noqa: ANN001 - a Prefect State
    """The health check's table artifact, row by check."""
    table = flow_run_artifacts(api_url, str(state.state_details.flow_run_id))["table"]
    data = table["data"] if isinstance(table["data"], list) else json.loads(table["data"])
    return {row["check"]: row for row in data}


def test_a_ready_company_is_all_ok(sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
    run_entities(settings, ["projects"])
    state = health_check(return_state=True)
    assert state.is_completed(), state.message
    checks = {c.check: c for c in state.result()}
    assert {c.status for c in checks.values()} == {"OK"}
    endpoints = {f"endpoint {name}" for name in ENTITY_FLOWS if enabled(name, Settings())}
    assert endpoints <= set(checks)
    assert checks["endpoint subcontract_lines"].detail == "same tool as subcontracts"
    assert {"token", "company", "permitted projects", "quota headroom", "tables", "export folder", "pairing"} <= set(checks)
    assert checks["tables"].connector == "erp sink" and f"of 6 tables in {small_erp.path} " in checks["tables"].detail
    assert checks["pairing"].detail.startswith("paired with Procore http://127.0.0.1 (local sandbox, any port)")
    assert sandbox.app.state.contract_violations == []


def test_the_erp_sink_check_reaches_a_postgresql_sink_or_says_why_not(state_postgres, tmp_path,
                                                                     monkeypatch) -> None:
    """With erp_sink_url the sink's database is the server's: the check counts the tables there
    (none, then those a write made), and a server that refuses the login fails the row."""
    url = state_postgres.fresh_url()
    monkeypatch.setenv("PROCORE_SYNC_ERP_SINK_URL", url)
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    check = sink_check(Settings())
    assert (check.status, check.detail) == ("OK", f"0 of 6 tables in {url} (each made by its entity's first run)")
    ErpSink.open(Settings()).write(COMMITMENT_CHANGE_ORDERS.header, COMMITMENT_CHANGE_ORDERS.lines, [])
    assert sink_check(Settings()).detail.startswith("2 of 6 tables")
    monkeypatch.setenv("PROCORE_SYNC_ERP_SINK_URL", url.replace("postgres@", "nobody@"))
    refused = sink_check(Settings())
    assert refused.status != "OK" and "the ERP sink database" in refused.detail
    close_pools(url)


def test_a_missing_erp_and_a_wrong_secret_fail_the_run_and_say_so(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    erp = shutil.copytree(small_erp.folder, tmp_path / "erp")
    settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_CLIENT_SECRET="not-the-secret", PROCORE_SYNC_ERP_PATH=str(tmp_path / "nowhere.duckdb"))
    state = health_check(return_state=True)
    assert state.is_failed()
    rows = rows_of(prefect_api, state)
    assert rows["database"]["status"] == "Unreachable" and "does not exist" in rows["database"]["detail"]
    assert rows["token"]["status"] == "Failed authentication"
    assert "not-the-secret" not in str(rows) + (state.message or "")


def test_the_command_prints_every_check_and_fails_when_one_is_not_ok(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    """``procore-sync health-check``, before go-live, without a deployment: the same checks."""
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_CLIENT_SECRET="not-the-secret")
    result = subprocess.run([sys.executable, "-m", "app.cli", "health-check", "--json"],
                            env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    rows = {row["check"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["token"]["status"] == "Failed authentication"
    assert rows["table resource_people"]["status"] == "OK" and rows["export folder"]["status"] == "OK"
    assert "not-the-secret" not in result.stdout + result.stderr
