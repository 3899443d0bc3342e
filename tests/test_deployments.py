"""prefect.yaml (workers) and deployments/ (serve) declare the same deployments."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from deployments import deployment_specs, runner_deployments
from flows import ENTITY_FLOWS
from procore_sync.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def yaml_deployments() -> dict[str, dict]:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in document["deployments"]}


def test_prefect_yaml_matches_the_served_deployments() -> None:
    settings = Settings()
    declared = yaml_deployments()
    specs = {spec.name: spec for spec in deployment_specs(settings)}
    assert set(declared) == set(specs)
    for name, spec in specs.items():
        entry = declared[name]
        assert entry["entrypoint"] == spec.entrypoint
        assert entry["parameters"] == spec.parameters
        assert [s["cron"] for s in entry["schedules"]] == [spec.cron]
        assert all(s["timezone"] == settings.schedule_timezone for s in entry["schedules"])
        assert entry["concurrency_limit"] == 1


def test_every_entity_has_a_scheduled_and_a_full_resync_deployment() -> None:
    names = {spec.name for spec in deployment_specs(Settings())}
    for entity in ENTITY_FLOWS:
        assert {entity, f"{entity}-full-resync"} <= names


def test_entrypoints_load_the_entity_flows() -> None:
    for spec in deployment_specs(Settings()):
        flow = load_flow_from_entrypoint(str(ROOT / spec.entrypoint))
        assert flow.name == ENTITY_FLOWS[spec.entity][1].name


def test_runner_deployments_carry_schedule_limit_and_parameters() -> None:
    built = {d.name: d for d in runner_deployments(Settings(schedule_timezone="America/Chicago"))}
    full = built["vendors-full-resync"]
    assert full.parameters == {"options": {"full_resync": True}}
    assert full.concurrency_limit == 1
    assert full.schedules[0].schedule.timezone == "America/Chicago"


def test_the_run_form_is_generated_from_the_options_model() -> None:
    schema = parameter_schema(ENTITY_FLOWS["vendors"][1]).model_dump()
    options = schema["definitions"]["SyncOptions"]["properties"]
    assert set(options) == {"full_resync", "dry_run", "erp_keys", "batch_size"}
    assert options["full_resync"]["description"].startswith("Ignore the last synchronisation date")
