"""The vendors flow end to end: real Prefect server, real sandbox over HTTP, real DuckDB files."""

from __future__ import annotations

import pytest

from connectors.erp import DuckDbErpSource
from connectors.state import StateStore
from flows.entities import sync_vendors
from flows.vendors import VENDORS
from sandbox.server import SandboxServer
from tasks.mapping import map_rows
from tasks.report import RunSummary
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import flow_run_artifacts

pytestmark = pytest.mark.usefixtures("prefect_api")


def bad_keys(erp: SampleErp) -> dict[str, str]:
    return {bad["key"]: bad["field"] for bad in erp.expected["suppliers"]["bad"]}


def good_payloads(erp: SampleErp) -> dict[str, dict]:
    records = map_rows(VENDORS, DuckDbErpSource(erp.path).read("suppliers"))
    return {r.key: r.payload for r in records if r.ok and r.payload is not None}


def assert_sandbox_holds_exactly(sandbox: SandboxServer, erp: SampleErp) -> None:
    vendors = sandbox.store.vendors(1)
    origin_ids = [v["origin_id"] for v in vendors]
    assert len(origin_ids) == len(set(origin_ids)), "a vendor was created twice"
    expected = good_payloads(erp)
    assert set(origin_ids) == set(expected)
    for vendor in vendors:
        sent = expected[vendor["origin_id"]]
        assert {field: vendor[field] for field in sent} == sent


def test_first_sync_lands_every_good_supplier_once_and_fails_each_bad_one(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
    summary = sync_vendors(options=SyncOptions())

    assert_sandbox_holds_exactly(sandbox, small_erp)
    bad = bad_keys(small_erp)
    assert (summary.created, summary.failed, summary.status) == (len(good_payloads(small_erp)), len(bad), "completed")
    assert summary.write_calls == 1
    states = StateStore(settings.state_path).record_states("vendors")
    for key, field in bad.items():
        assert states[key].status == "failed"
        assert key in states[key].message or field in states[key].message, states[key].message
    warned = {w["key"] for w in small_erp.expected["suppliers"]["warnings"]}
    assert {k for k, s in states.items() if s.status == "warning"} == warned
    assert sandbox.app.state.contract_violations == []

    again = sync_vendors(options=SyncOptions())
    assert (again.write_calls, again.created, again.updated) == (0, 0, 0)
    assert again.cursor_before == summary.cursor_after


def test_run_publishes_progress_records_table_and_summary(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
    state = sync_vendors(options=SyncOptions(), return_state=True)
    by_type = flow_run_artifacts(prefect_api, str(state.state_details.flow_run_id))
    assert set(by_type) >= {"progress", "table", "markdown"}
    assert by_type["progress"]["data"] == 100.0
    table = by_type["table"]["data"]
    for key in bad_keys(small_erp):
        assert key in str(table)
    assert "vendors: Sync completed" in by_type["markdown"]["data"]

    # Nothing left to send: no progress bar at all, not one left at 0 % on a completed run.
    again = sync_vendors(options=SyncOptions(), return_state=True)
    assert again.result().write_calls == 0
    assert "progress" not in flow_run_artifacts(prefect_api, str(again.state_details.flow_run_id))


def test_dry_run_publishes_the_plan_and_writes_nothing(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
    summary = sync_vendors(options=SyncOptions(dry_run=True))
    assert summary.dry_run and summary.write_calls == 0
    assert summary.created == len(good_payloads(small_erp))
    assert sandbox.store.vendors(1) == []
    assert StateStore(settings.state_path).record_states("vendors") == {}


def test_a_changed_supplier_is_updated_and_only_it(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    import shutil

    from demo import sample_erp

    erp = SampleErp(tmp_path / "erp", small_erp.expected)
    shutil.copytree(small_erp.folder, erp.folder)
    settings_env(monkeypatch, sandbox.url, erp.path, tmp_path)
    sync_vendors(options=SyncOptions())
    changed = sample_erp.mutate(erp.folder, changes=3, seed=1)
    summary = sync_vendors(options=SyncOptions())
    assert (summary.updated, summary.created, summary.write_calls) == (len(changed), 0, 1)
    assert_sandbox_holds_exactly(sandbox, erp)


def test_targeted_resync_of_one_key_sends_one_record(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
    key = next(iter(good_payloads(small_erp)))
    summary: RunSummary = sync_vendors(options=SyncOptions(erp_keys=[key]))
    assert (summary.created, summary.write_calls) == (1, 1)
    assert [v["origin_id"] for v in sandbox.store.vendors(1)] == [key]
    assert StateStore(settings.state_path).get_cursor("vendors") is None


def test_wrong_company_stops_the_run_with_a_config_message(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_COMPANY_ID="999")
    state = sync_vendors(options=SyncOptions(), return_state=True)
    assert state.is_failed()
    assert "999" in state.message
    assert sandbox.store.vendors(1) == []
