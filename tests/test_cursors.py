"""Differential cursors that skip nothing: late ERP commits and a worker clock that is not Procore's.

Real parts: the sandbox over HTTP (with a manual clock where Procore's time matters), DuckDB files
for the ERP and the state, and the engine inside real Prefect flows.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.erp import DuckDbErpSource
from connectors.state import StateStore
from flows.vendors import sync_vendors
from procore_sync import sample_erp
from sandbox.server import SandboxServer
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")


# --- point 1: ERP → Procore -------------------------------------------------------------------


def test_late_commits_are_never_skipped(sandbox: SandboxServer, small_erp: SampleErp, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppliers committed after a run read the table, but stamped before the cursor it left (a
    long ERP transaction, another server's clock), are read by the next run; every other row the
    look-back reads again costs no call."""
    erp = SampleErp(tmp_path / "erp", small_erp.expected)
    shutil.copytree(small_erp.folder, erp.folder)
    settings = settings_env(monkeypatch, sandbox.url, erp.path, tmp_path)
    first = sync_vendors(options=SyncOptions())
    cursor = StateStore(settings.state_path).get_cursor("vendors")
    assert first.status == "completed" and cursor is not None

    late = sample_erp.mutate(erp.folder, changes=3, seed=1, now=cursor - timedelta(minutes=10))
    second = sync_vendors(options=SyncOptions())

    assert (second.updated, second.created, second.write_calls) == (len(late), 0, 1)
    phones = {v["origin_id"]: v["business_phone"] for v in sandbox.store.vendors(1)}
    rows = {r.data["supplier_code"]: r.data for r in DuckDbErpSource(erp.path).read("suppliers")}
    assert {key: phones[key] for key in late} == {key: rows[key]["business_phone"] for key in late}
    assert StateStore(settings.state_path).get_cursor("vendors") == cursor  # never moved back

