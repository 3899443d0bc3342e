"""prefect.yaml (workers) and deployments/ (serve) declare the same deployments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema
from pydantic import ValidationError

from deployments import deployment_specs, render_prefect_yaml, runner_deployments
from flows import ENTITY_FLOWS, levels
from procore_sync.errors import ConfigError
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
    assert active == {"sync-all", "sync-all-full-resync", "resource_people", "resource_projects", "reconcile"}


def test_maintenance_deployments_are_started_by_hand_from_a_form_that_defaults_to_a_dry_run() -> None:
    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert declared["resync-failed"]["schedules"] == declared["health-check"]["schedules"] == []
    schema = parameter_schema(load_flow_from_entrypoint(str(ROOT / declared["resync-failed"]["entrypoint"])))
    form = schema.model_dump()["definitions"]["ResyncFailedOptions"]["properties"]
    assert set(form) == {"entities", "project", "message_contains", "erp_keys", "since", "dry_run", "recreate_deleted"}
    assert form["recreate_deleted"]["default"] is False
    assert form["dry_run"]["default"] is True


def test_reconcile_runs_daily_with_the_procore_sync_tags_and_a_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finance's reconciliation: scheduled daily and active by default, tagged like the syncs so
    the failed-run alert (automations on procore-sync runs) catches an unexplained difference."""
    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    reconcile = declared["reconcile"]
    assert reconcile["schedules"] == [{"cron": "0 5 * * *", "timezone": "UTC", "active": True}]
    assert "procore-sync" in reconcile["tags"] and reconcile["concurrency_limit"] == 1
    schema = parameter_schema(load_flow_from_entrypoint(str(ROOT / reconcile["entrypoint"])))
    form = schema.model_dump()["definitions"]["ReconcileOptions"]["properties"]
    assert set(form) == {"projects", "entities", "tolerance"}
    monkeypatch.setenv("PROCORE_SYNC_RECONCILE_CRON", "30 4 * * 1-5")
    built = {d.name: d for d in runner_deployments(Settings())}
    assert _schedules(built["reconcile"]) == [("30 4 * * 1-5", True)]


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


def _schedules(deployment: RunnerDeployment) -> list[tuple[str, bool]]:
    return [(s.schedule.cron, s.active) for s in deployment.schedules]  # type: ignore[union-attr]


def test_serve_takes_the_flows_it_is_given_and_refuses_one_it_has_no_deployment_for() -> None:
    from app.runner import serve_forever

    served = runner_deployments(Settings(_env_file=None), flows=["vendors", "sync-all"])
    assert sorted({d.flow_name for d in served}) == ["sync-all", "vendors"]
    assert {d.name for d in served} == {"vendors", "vendors-full-resync", "sync-all", "sync-all-full-resync"}
    with pytest.raises(ConfigError, match="no deployment of the flow.s. supliers; known: .*retry-failed-runs"):
        serve_forever(Settings(_env_file=None), flows=["vendors", "supliers"])


def test_by_default_resource_planning_runs_on_its_own_schedule_and_the_rest_as_before() -> None:
    built = {d.name: d for d in runner_deployments(Settings())}
    own = {"resource_people", "resource_projects"}
    for name in own:
        assert _schedules(built[name]) == [("30 6-18/3 * * *", True)]
    for name in ["sync-all", *ENTITY_FLOWS]:
        assert _schedules(built[f"{name}-full-resync"]) == [("0 2 * * 0", name == "sync-all")]
        if name not in own:
            assert _schedules(built[name]) == [("0 7-19/3 * * 1-5", name == "sync-all")]


def test_an_entity_named_in_the_schedules_setting_gets_every_cron_active(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_SCHEDULES", json.dumps({"employees": ["0 6 * * *", "0 13 * * 1-5"]}))
    built = {d.name: d for d in runner_deployments(Settings())}
    assert _schedules(built["employees"]) == [("0 6 * * *", True), ("0 13 * * 1-5", True)]
    # The mapping replaces the default: Resource Planning is back on the common, inactive schedule.
    assert _schedules(built["resource_people"]) == [("0 7-19/3 * * 1-5", False)]


def test_an_unknown_entity_in_the_schedules_setting_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown entity vendorz; known: vendors, customers") as caught:
        deployment_specs(Settings(schedules={"vendorz": "0 6 * * *"}))
    assert "resource_people" in str(caught.value)


def test_a_bad_cron_in_the_schedules_setting_is_refused_naming_entity_and_expression() -> None:
    with pytest.raises(ConfigError, match=r"'0 25 \* \* \*' for vendors is not a valid cron expression"):
        render_prefect_yaml(Settings(schedules={"vendors": ["0 6 * * *", "0 25 * * *"]}))


def test_an_empty_list_of_crons_is_refused_when_the_settings_load() -> None:
    with pytest.raises(ValidationError, match="schedules.vendors"):
        Settings(schedules={"vendors": []})


def test_the_run_form_is_generated_from_the_options_model() -> None:
    schema = parameter_schema(ENTITY_FLOWS["vendors"][1]).model_dump()
    options = schema["definitions"]["SyncOptions"]["properties"]
    assert set(options) == {"full_resync", "dry_run", "erp_keys", "projects", "force_deactivation", "upload_file",
                            "recreate_deleted", "batch_size"}
    assert options["full_resync"]["description"].startswith("Ignore the last synchronisation date")


def test_levels_put_every_parent_before_its_children() -> None:
    position = {name: i for i, level in enumerate(levels()) for name in level}
    assert set(position) == set(ENTITY_FLOWS)
    for name, (spec, _) in ENTITY_FLOWS.items():
        assert all(position[parent] < position[name] for parent in spec.depends_on)


@pytest.mark.usefixtures("prefect_api")
def test_registered_deployments_are_listed_by_the_api_with_their_schedules(prefect_api: str) -> None:
    """What ``demo --once`` leaves behind: every deployment, its schedule and its form."""
    from app.runner import register_deployments

    count = register_deployments(Settings())
    body = {"limit": 200, "offset": 0, "sort": "NAME_ASC"}
    listed = {d["name"]: d for d in requests.post(f"{prefect_api}/deployments/filter", json=body, timeout=30).json()}
    assert len(listed) >= count
    for name in ["sync-all", *ENTITY_FLOWS]:
        assert listed[name]["schedules"] and listed[f"{name}-full-resync"]["schedules"]
    assert {"resync-failed", "retry-failed-runs", "health-check"} <= set(listed)


def test_each_profile_has_every_deployment_named_tagged_and_parametrised_for_it(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Several companies: one set of deployments per profile; the profile reaches the run as a
    parameter (served deployments share one process, so no per-deployment environment)."""
    from deployments import companies

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROCORE_SYNC_PROFILES_FILE", str(tmp_path / "profiles.toml"))
    (tmp_path / "profiles.toml").write_text('[acme]\ncompany_id = 12\n\n[globex]\ncompany_id = 13\n'
                                            'schedule_timezone = "Europe/Paris"\n')
    chosen = companies(Settings())
    assert [s.profile for s in chosen] == ["acme", "globex"]
    declared = yaml.safe_load(render_prefect_yaml(*chosen))["deployments"]
    names = [d["name"] for d in declared]
    assert len(names) == len(set(names)) == 2 * len(deployment_specs(Settings()))
    by_name = {d["name"]: d for d in declared}
    assert by_name["acme-vendors-full-resync"]["parameters"] == {"options": {"full_resync": True}, "profile": "acme"}
    assert by_name["globex-health-check"]["parameters"] == {"profile": "globex"}
    assert "profile:globex" in by_name["globex-sync-all"]["tags"] and "procore-sync" in by_name["globex-sync-all"]["tags"]
    assert by_name["globex-sync-all"]["schedules"][0]["timezone"] == "Europe/Paris"
    assert by_name["acme-sync-all"]["schedules"][0]["timezone"] == "UTC"
    served = {d.name: d for d in runner_deployments(*chosen)}
    assert served["globex-reconcile"].parameters == {"profile": "globex"}
    # Every flow a profile's deployment runs takes the parameter.
    for d in declared[:3] + [by_name["acme-resync-failed"], by_name["acme-retry-failed-runs"], by_name["acme-reconcile"]]:
        flow = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        assert "profile" in parameter_schema(flow).properties


def test_without_a_profiles_file_the_deployments_are_the_base_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments import companies

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROCORE_SYNC_PROFILES_FILE", raising=False)
    [base] = companies(Settings())
    assert base.profile is None and render_prefect_yaml(base) == (ROOT / "prefect.yaml").read_text()


def test_apply_puts_on_the_work_pool_what_prefect_yaml_declares(prefect_api: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`procore-sync deployments --apply` (workers; ``prefect deploy`` stops after one deployment
    with Prefect 3.8.8): each deployment on the server as the file declares it. A profile of its
    own, so that the deployments the other tests serve are left alone."""
    from deployments import chosen_specs, companies
    from deployments.work_pool import apply_to_work_pool

    monkeypatch.setenv("PROCORE_SYNC_PROFILES_FILE", str(tmp_path / "profiles.toml"))
    (tmp_path / "profiles.toml").write_text('[applied]\ncompany_id = 14\n')
    chosen = companies(Settings())
    declared = yaml.safe_load(render_prefect_yaml(*chosen))
    assert apply_to_work_pool(chosen_specs(*chosen)) == len(declared["deployments"])

    body = {"deployments": {"name": {"like_": "applied-"}}, "limit": 200, "offset": 0, "sort": "NAME_ASC"}
    answer = requests.post(f"{prefect_api}/deployments/filter", json=body, timeout=30).json()
    on_server = {d["name"]: d for d in answer}
    assert set(on_server) == {d["name"] for d in declared["deployments"]}
    for d in declared["deployments"]:
        there = on_server[d["name"]]
        assert (there["entrypoint"], there["work_pool_name"], there["work_queue_name"], there["pull_steps"],
                there["job_variables"], sorted(there["tags"]), there["parameters"],
                (there["global_concurrency_limit"] or {}).get("limit")) == (
            d["entrypoint"], d["work_pool"]["name"], d["work_pool"]["work_queue_name"], declared["pull"],
            d["work_pool"]["job_variables"], sorted(d["tags"]), d["parameters"], d["concurrency_limit"]), d["name"]
        schedules = [{"cron": s["schedule"]["cron"], "timezone": s["schedule"]["timezone"], "active": s["active"]}
                     for s in there["schedules"]]
        assert sorted(schedules, key=str) == sorted(d["schedules"], key=str), d["name"]
        assert there["parameter_openapi_schema"]["properties"], d["name"]  # the UI's run form
