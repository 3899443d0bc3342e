"""Maintenance flows against the real engine: real Prefect, real sandbox over HTTP, real DuckDB."""

from __future__ import annotations

import shutil

import pytest

from connectors.state import StateStore
from flows.entities import sync_vendors
from flows.maintenance import ResyncFailedOptions, resync_failed, select
from demo import sample_erp
from procore_sync.settings import Settings
from sandbox.server import SandboxServer
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import heartbeats, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def failed_suppliers(sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch) -> tuple[Settings, list[str]]:
    """Suppliers synced once into the sandbox, from a copy of the ERP; the fixable bad keys."""
    erp = shutil.copytree(small_erp.folder, tmp_path / "erp")
    settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path / "home")
    sync_vendors(options=SyncOptions())
    fixable = [bad["key"] for bad in small_erp.expected["suppliers"]["bad"] if bad.get("fix")]
    assert len(fixable) >= 2
    return settings, fixable


def test_resync_failed_with_one_key_resyncs_only_that_record(failed_suppliers, sandbox: SandboxServer) -> None:
    settings, (chosen, other) = failed_suppliers[0], failed_suppliers[1][:2]
    for key in (chosen, other):  # both fixed in the ERP; only one is asked for
        sample_erp.fix(settings.erp_path.parent, "suppliers", key)
    store = StateStore(settings.state_path)

    assert resync_failed(options=ResyncFailedOptions(erp_keys=[chosen])) == []  # a dry run by default
    assert store.record_states("vendors")[chosen].status == "failed"

    [summary] = resync_failed(options=ResyncFailedOptions(erp_keys=[chosen], dry_run=False))
    assert (summary.entity, summary.created, summary.write_calls) == ("vendors", 1, 1)
    states = store.record_states("vendors")
    assert states[chosen].status in ("ok", "warning") and states[other].status == "failed"
    attempts = [a.action for a in reversed(store.history(entity="vendors", key=chosen))]
    assert attempts == ["fail", "create"]  # the history keeps both attempts
    assert chosen in {v["origin_id"] for v in sandbox.store.vendors(1)}
    assert other not in {v["origin_id"] for v in sandbox.store.vendors(1)}


def test_entity_runs_inside_resync_failed_leave_the_heartbeat_to_it(failed_suppliers, prefect_api: str) -> None:
    """Prefect's heartbeat says a flow run's process is alive. An entity's run inside
    resync-failed (or sync-all) lives in that flow run's process, so the parent's heartbeat says
    it; one of its own would only cost the run a second at its end (Prefect joins the heartbeat
    thread, which sleeps in one-second steps)."""
    settings, (key, *_) = failed_suppliers
    state = resync_failed(options=ResyncFailedOptions(erp_keys=[key], dry_run=False), return_state=True)
    [summary] = state.result()
    parent, child = str(state.state_details.flow_run_id), summary.flow_run_id
    beats = wait_for(lambda: found if parent in (found := heartbeats(prefect_api, {parent, child})) else None,
                     "resync-failed's heartbeat to be stored", timeout_s=60)
    assert child not in beats


def test_the_selection_follows_every_filter(failed_suppliers) -> None:
    settings, fixable = failed_suppliers
    everything = select(ResyncFailedOptions(), settings)
    assert {row.erp_key for row in everything} >= set(fixable)
    assert {row.status for row in everything} <= {"failed", "blocked"}
    word = everything[0].message.split()[0]
    by_text = select(ResyncFailedOptions(message_contains=word.upper()), settings)
    assert by_text and all(word.casefold() in row.message.casefold() for row in by_text)
    assert select(ResyncFailedOptions(entities=["projects"]), settings) == []
    later = max(row.last_attempt for row in everything)
    assert select(ResyncFailedOptions(since=later.replace(year=later.year + 1)), settings) == []
    assert select(ResyncFailedOptions(project="P-0000"), settings) == []
    with pytest.raises(Exception, match="unknown entity"):
        select(ResyncFailedOptions(entities=["nonsense"]), settings)
