"""One registry: an entity declared once gets everything else, and the sample ERP's per-table
registries and the templates agree with the declarations."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
from typer.testing import CliRunner

from deployments import deployment_specs, render_prefect_yaml, runner_deployments
from flows import ENTITY_FLOWS, entrypoint, levels
from flows.registry import register
from flows.vendors import VENDORS
from demo import sample_erp
from app.cli import app
from app.runner import entity_names
from procore_sync.settings import Settings
from flows.registry import template_columns
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import SyncWriter

ROOT = Path(__file__).resolve().parent.parent


# --- a made-up entity, declared here and nowhere else --------------------------------------------


class ErpWidget(ErpRow):
    widget_code: str
    name: str | None = None
    supplier_code: str | None = None
    updated_at: datetime | None = None


class ProcoreWidget(ProcoreModel):
    name: str
    vendor_id: int


def map_widget(widget: ErpWidget, refs: Refs) -> Mapped:
    vendor_id = refs.id(VENDORS, widget.supplier_code, f"supplier {widget.supplier_code}")
    return Mapped(payload=ProcoreWidget(name=widget.name or widget.widget_code, vendor_id=vendor_id))


WIDGETS = EntitySpec(
    name="widgets",
    title="Widgets",
    erp_table="widgets",
    erp_model=ErpWidget,
    procore_model=ProcoreWidget,
    map_record=map_widget,
    key_field="widget_code",
    target=Target("/rest/v1.0/widgets/sync"),
    writer=SyncWriter(),
    list_path="/rest/v1.0/widgets",
    parents=(VENDORS,),
)


@pytest.fixture
def widgets() -> Iterator[EntitySpec]:
    register(WIDGETS)
    try:
        yield WIDGETS
    finally:
        ENTITY_FLOWS.pop(WIDGETS.name)


def test_a_registered_entity_gets_a_flow_named_for_it_with_the_run_form(widgets: EntitySpec) -> None:
    spec, flow = ENTITY_FLOWS["widgets"]
    assert spec is widgets and list(ENTITY_FLOWS)[-1] == "widgets"
    assert (flow.name, flow.fn.__name__) == ("widgets", "sync_widgets")
    assert flow.description == "Sync Widgets from the ERP to Procore."
    assert "SyncOptions" in parameter_schema(flow).model_dump()["definitions"]
    position = {name: i for i, level in enumerate(levels()) for name in level}
    assert position["widgets"] > position["vendors"]


def test_a_registered_entity_gets_its_deployments_served_and_in_prefect_yaml(widgets: EntitySpec) -> None:
    flow = ENTITY_FLOWS["widgets"][1]
    assert entrypoint(flow) == "flows/entities.py:sync_widgets"
    assert load_flow_from_entrypoint(str(ROOT / "flows/entities.py:sync_widgets")) is flow
    declared = {d["name"]: d for d in yaml.safe_load(render_prefect_yaml(Settings()))["deployments"]}
    assert declared["widgets"]["entrypoint"] == declared["widgets-full-resync"]["entrypoint"] == entrypoint(flow)
    assert {d.name for d in deployment_specs(Settings())} >= {"widgets", "widgets-full-resync"}
    served = {d.name: d for d in runner_deployments(Settings())}
    assert served["widgets"].entrypoint == entrypoint(flow)


def test_a_registered_entity_gets_a_cli_name_and_a_template(widgets: EntitySpec, tmp_path: Path) -> None:
    assert entity_names(["widgets"]) == ["widgets"]
    result = CliRunner().invoke(app, ["templates", "--out", str(tmp_path), "--entity", "widgets"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "widgets.csv").read_text().strip() == "widget_code,name,supplier_code,updated_at"


def test_registering_a_child_before_its_parent_or_twice_is_refused() -> None:
    orphan = dataclasses.replace(WIDGETS, name="orphans", parents=(WIDGETS,))
    with pytest.raises(ValueError, match="register widgets before orphans"):
        register(orphan)
    with pytest.raises(ValueError, match="vendors is registered already"):
        register(VENDORS)
    assert "orphans" not in ENTITY_FLOWS


# --- the sample ERP's per-table registries and the templates ------------------------------------


def erp_tables() -> list[str]:
    return [spec.erp_table for spec, _ in ENTITY_FLOWS.values() if isinstance(spec, EntitySpec)]


def test_every_erp_table_an_entity_reads_has_a_generator_and_no_generator_is_left_over() -> None:
    assert set(sample_erp.GENERATORS) == set(erp_tables())


def test_each_generator_writes_exactly_its_templates_columns() -> None:
    """The template is the entity's ERP model; the sample writes those columns in that order."""
    templates, generated = template_columns(), sample_erp.generated_columns()
    assert list(templates) == erp_tables()
    for table, columns in generated.items():
        assert sorted(columns) == sorted(templates[table]), table
        assert templates[table][0] == columns[0], f"{table}: the key comes first"
        assert templates[table][-1] == "updated_at", table


def test_every_mutation_is_of_an_entitys_table_and_only_resource_planning_has_none() -> None:
    """A second sync in the tests and benchmarks changes rows through ``mutate_table``; suppliers
    change through ``mutate``. Resource Planning's tables come from their own sources."""
    mutated = {"suppliers", *sample_erp.MUTATIONS}
    assert mutated <= set(erp_tables())
    assert set(erp_tables()) - mutated == {"resource_people", "resource_projects"}


def test_every_template_column_is_documented() -> None:
    docs = (ROOT / "docs" / "erp-templates.md").read_text()
    for table, columns in template_columns().items():
        assert f"`{table}" in docs, table
        assert [column for column in columns if f"`{column}`" not in docs] == [], table
