"""prefect.yaml (workers) and deployments/ (serve) declare the same deployments."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

from deployments import deployment_specs, render_prefect_yaml, runner_deployments
from flows import ENTITY_FLOWS, levels
from procore_sync.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_prefect_yaml_is_rendered_from_the_served_deployments() -> None:
    assert (ROOT / "prefect.yaml").read_text() == render_prefect_yaml(Settings()), (
        "prefect.yaml is stale: run `procore-sync deployments --write`"
    )


def test_every_entity_and_sync_all_have_a_scheduled_and_a_full_resync_deployment() -> None:
    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    for name in ["sync-all", *ENTITY_FLOWS]:
        for variant in (name, f"{name}-full-resync"):
            assert declared[variant]["schedules"][0]["timezone"] == "UTC"
            assert declared[variant]["concurrency_limit"] == 1
        assert declared[f"{name}-full-resync"]["parameters"] == {"options": {"full_resync": True}}
    active = {name for name, d in declared.items() if d["schedules"] and d["schedules"][0]["active"]}
    assert active == {"sync-all", "sync-all-full-resync"}


def test_maintenance_deployments_are_started_by_hand_from_a_form_that_defaults_to_a_dry_run() -> None:
    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert declared["resync-failed"]["schedules"] == declared["health-check"]["schedules"] == []
    schema = parameter_schema(load_flow_from_entrypoint(str(ROOT / declared["resync-failed"]["entrypoint"])))
    form = schema.model_dump()["definitions"]["ResyncFailedOptions"]["properties"]
    assert set(form) == {"entities", "project", "message_contains", "erp_keys", "since", "dry_run"}
    assert form["dry_run"]["default"] is True


def test_entrypoints_load_their_flows() -> None:
    for spec in deployment_specs(Settings()):
        flow = load_flow_from_entrypoint(str(ROOT / spec.entrypoint))
        assert flow.name == spec.flow.name


def test_runner_deployments_carry_schedule_limit_and_parameters() -> None:
    built = {d.name: d for d in runner_deployments(Settings(schedule_timezone="America/Chicago"))}
    full = built["vendors-full-resync"]
    assert full.parameters == {"options": {"full_resync": True}}
    assert full.concurrency_limit == 1
    assert full.schedules[0].schedule.timezone == "America/Chicago"


def test_the_run_form_is_generated_from_the_options_model() -> None:
    schema = parameter_schema(ENTITY_FLOWS["vendors"][1]).model_dump()
    options = schema["definitions"]["SyncOptions"]["properties"]
    assert set(options) == {"full_resync", "dry_run", "erp_keys", "projects", "force_deactivation", "batch_size"}
    assert options["full_resync"]["description"].startswith("Ignore the last synchronisation date")


def test_levels_put_every_parent_before_its_children() -> None:
    position = {name: i for i, level in enumerate(levels()) for name in level}
    assert set(position) == set(ENTITY_FLOWS)
    for name, (spec, _) in ENTITY_FLOWS.items():
        assert all(position[parent] < position[name] for parent in spec.depends_on)


@pytest.mark.usefixtures("prefect_api")
def test_registered_deployments_are_listed_by_the_api_with_their_schedules(prefect_api: str) -> None:
    """What ``demo --once`` leaves behind: every deployment, its schedule and its form."""
    from procore_sync.runner import register_deployments

    count = register_deployments(Settings())
    body = {"limit": 200, "offset": 0, "sort": "NAME_ASC"}
    listed = {d["name"]: d for d in requests.post(f"{prefect_api}/deployments/filter", json=body, timeout=30).json()}
    assert len(listed) >= count
    for name in ["sync-all", *ENTITY_FLOWS]:
        assert listed[name]["schedules"] and listed[f"{name}-full-resync"]["schedules"]
    assert {"resync-failed", "retry-failed-runs", "health-check"} <= set(listed)
