"""The one interface both spec kinds answer (``tasks.spec.Spec``), without a server: callers ask
the spec its direction, tables and probe, and the run and the reconciliation follow its direction."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from app.runner import upload_file
from connectors.procore import ProcoreClient
from flows import ENTITY_FLOWS
from flows.modified_budget import BUDGET_CHANGES
from flows.vendors import VENDORS
from procore_sync.errors import ConfigError
from procore_sync.settings import Settings
from tasks.engine import WORKS
from tasks.reconcile import RECONCILERS, reconcile_inbound
from tasks.spec import ERP_TO_PROCORE, PROCORE_TO_ERP


class Calls:
    """A Procore client that notes each read and answers nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any] | None, int | None]] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        self.calls.append(("get", path, params, None))
        return []

    def paginate(self, path: str, params: dict[str, Any] | None = None, *,
                 per_page: int | None = None) -> Iterator[dict[str, Any]]:
        self.calls.append(("paginate", path, params, per_page))
        return iter(())


def test_every_entity_declares_a_direction_its_run_and_reconciliation_follow() -> None:
    directions = {spec.direction for spec, _ in ENTITY_FLOWS.values()}
    assert directions == {ERP_TO_PROCORE, PROCORE_TO_ERP}
    assert all(work.direction == direction for direction, work in WORKS.items())
    assert set(WORKS) == set(RECONCILERS) == directions
    assert RECONCILERS[PROCORE_TO_ERP] is reconcile_inbound
    for name, (spec, _) in ENTITY_FLOWS.items():
        assert spec.inbound == (spec.direction == PROCORE_TO_ERP), name
        assert spec.erp_tables and spec.erp_tables[0] == spec.erp_table, name
        assert spec.probe_path.startswith("/rest/"), name


def test_an_inbound_spec_names_the_tables_it_writes_an_outbound_one_the_table_it_reads() -> None:
    assert VENDORS.erp_tables == ("suppliers",)
    assert BUDGET_CHANGES.erp_tables == ("budget_changes", "budget_change_lines")
    assert [table.name for table in BUDGET_CHANGES.sink_tables] == list(BUDGET_CHANGES.erp_tables)


def test_each_spec_probes_its_own_endpoint_with_one_small_read() -> None:
    client = Calls()
    context = {"company_id": 7, "project_id": 11}
    VENDORS.probe(cast(ProcoreClient, client), context)
    BUDGET_CHANGES.probe(cast(ProcoreClient, client), context)
    assert client.calls == [
        ("paginate", "/rest/v1.0/vendors", {"company_id": 7}, 1),
        ("get", "/rest/v1.0/projects/11/budget_changes", None, None),
    ]


def test_an_upload_is_refused_to_an_entity_that_comes_from_procore(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="comes from Procore"):
        upload_file(cast(Settings, None), BUDGET_CHANGES.name, tmp_path / "budget_changes.csv")
