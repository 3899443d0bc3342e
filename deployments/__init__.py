"""The deployments: one per entity flow and sync-all, each with a ``-full-resync`` variant.

``prefect.yaml`` declares the same deployments for a work pool and workers; this module builds
them for ``serve`` (what ``procore-sync demo`` runs) and renders ``prefect.yaml`` from the same
list (``procore-sync deployments --write``), so the two cannot drift; a test checks the file.
Entities named in ``settings.schedules`` run on their own active schedules as well as in
sync-all; those names and crons are checked here, before anything is registered or written.

Several companies (profiles, ``procore_sync/profiles.py``): each profile has every deployment,
named ``<profile>-<name>``, tagged ``profile:<profile>``, with its schedules, and with a
``profile`` parameter from which its runs make their settings. A parameter rather than an
environment variable: ``serve`` runs every deployment in one process, a worker in its own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from deployments.crash_detection import heartbeat_env
from flows import ENTITY_FLOWS, entrypoint
from flows.health import health_check
from flows.maintenance import resync_failed, retry_failed_runs
from flows.reconcile import reconcile_money
from flows.sync_all import sync_all
from procore_sync.errors import ConfigError
from procore_sync.profiles import Profiles, profile_tag
from procore_sync.settings import Settings

WORK_POOL = "procore-sync"
# Where a worker finds the code: the checkout PROCORE_SYNC_DIR names in the worker's environment.
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PROCORE_SYNC_DIR }}"}}]


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment. Every sync deployment carries its schedules; only sync-all's, and those of
    the entities named in ``settings.schedules``, are active by default, because sync-all already
    runs every entity in order (an operator may switch an entity's own schedule on in the UI to
    sync it more often). Maintenance deployments have no schedule (no ``crons``): an operator
    starts them from their form."""

    name: str
    flow: Flow
    crons: tuple[str, ...]
    active: bool
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def entrypoint(self) -> str:
        return entrypoint(self.flow)


def entity_schedules(settings: Settings) -> dict[str, tuple[str, ...]]:
    """``settings.schedules`` checked: a typo in an entity name or a cron would otherwise only
    show when Prefect refuses the deployment, or never (a schedule that does not fire)."""
    unknown = sorted(set(settings.schedules) - set(ENTITY_FLOWS))
    if unknown:
        raise ConfigError(f"PROCORE_SYNC_SCHEDULES names unknown entity {', '.join(unknown)}; "
                          f"known: {', '.join(ENTITY_FLOWS)}")
    for name, crons in settings.schedules.items():
        for cron in crons:
            _check_cron(name, cron)
    return {name: tuple(crons) for name, crons in settings.schedules.items()}


def _check_cron(entity: str, cron: str, setting: str = "PROCORE_SYNC_SCHEDULES") -> None:
    try:
        Cron(cron)  # Prefect's own parser, so what passes here is what serve and deploy accept
    except ValueError as exc:
        raise ConfigError(f"{setting}: {cron!r} for {entity} is not a valid cron expression "
                          f"(minute hour day month weekday)", entity=entity) from exc


def sync_specs(name: str, flow: Flow, what: str, settings: Settings,
               own: dict[str, tuple[str, ...]]) -> list[DeploymentSpec]:
    """``<name>`` and ``<name>-full-resync``; an entity's own schedules replace the common cron."""
    crons, active = own.get(name, (settings.schedule_cron,)), name == "sync-all" or name in own
    return [
        DeploymentSpec(name, flow, crons, active,
                       description=f"Sync of {what}.", tags=("procore-sync", name)),
        DeploymentSpec(
            f"{name}-full-resync", flow, (settings.full_resync_cron,), name == "sync-all",
            parameters={"options": {"full_resync": True}},
            description=f"Full resync of {what}: ignores the last synchronisation date.",
            tags=("procore-sync", name, "full-resync"),
        ),
    ]


def maintenance_specs() -> list[DeploymentSpec]:
    tags = ("procore-sync-maintenance", "maintenance")
    return [
        DeploymentSpec("resync-failed", resync_failed, (), False,
                       description="Resync the failed and blocked records the form selects "
                                   "(a dry run unless dry_run is unticked).", tags=tags),
        DeploymentSpec("retry-failed-runs", retry_failed_runs, (), False,
                       description="Re-run every failed or crashed procore-sync deployment run since a "
                                   "time, same run ids and parameters.", tags=tags),
        DeploymentSpec("health-check", health_check, (), False,
                       description="Check the ERP, the ERP sink, Procore and every entity's endpoint; "
                                   "fails when any check is not OK.", tags=tags),
    ]


def reconcile_spec(settings: Settings) -> DeploymentSpec:
    """Finance's reconciliation, daily and active: tagged ``procore-sync`` like the syncs, so an
    unexplained difference (a failed run) reaches whoever the failed-run alert reaches."""
    _check_cron("reconcile", settings.reconcile_cron, "PROCORE_SYNC_RECONCILE_CRON")
    return DeploymentSpec("reconcile", reconcile_money, (settings.reconcile_cron,), True,
                          description="Reconcile the ERP's money with Procore's per project and cost code; "
                                      "fails when a difference is not explained by a failed, blocked or unsynced "
                                      "record.", tags=("procore-sync", "reconcile"))


def deployment_specs(settings: Settings) -> list[DeploymentSpec]:
    """Every deployment of the settings' company; a profile's named, tagged and parametrised for it."""
    own = entity_schedules(settings)
    flows = [("sync-all", sync_all, "every entity, parents first")]
    flows += [(name, flow, spec.display_name) for name, (spec, flow) in ENTITY_FLOWS.items()]
    specs = [d for name, flow, what in flows for d in sync_specs(name, flow, what, settings, own)]
    specs += maintenance_specs() + [reconcile_spec(settings)]
    return [for_profile(d, settings.profile) for d in specs] if settings.profile else specs


def deployment_name(name: str, profile: str | None) -> str:
    """``name`` for the base settings, ``<profile>-<name>`` for a profile's."""
    return f"{profile}-{name}" if profile else name


def for_profile(d: DeploymentSpec, profile: str) -> DeploymentSpec:
    return replace(d, name=deployment_name(d.name, profile), parameters={**d.parameters, "profile": profile},
                   tags=(*d.tags, profile_tag(profile)), description=f"{profile}: {d.description}")


def companies(base: Settings, profile: str | None = None) -> list[Settings]:
    """The settings whose deployments this installation has: the named profile's; else every
    profile's (checked: no two share a state); else, without profiles, the base settings."""
    profiles = Profiles.load(base)
    if profile is not None:
        return [profiles.settings_for(profile, base)]
    return list(profiles.all_settings(base).values()) or [base]


def schedules_of(d: DeploymentSpec, settings: Settings) -> list[dict[str, Any]]:
    return [{"cron": cron, "timezone": settings.schedule_timezone, "active": d.active} for cron in d.crons]


def chosen_specs(*companies: Settings, flows: Collection[str] | None = None) -> list[tuple[Settings, DeploymentSpec]]:
    """Each company's deployments with its settings; only those of the named ``flows`` when given,
    where a name no deployment has is refused (before anything is installed or registered)."""
    specs = [(settings, d) for settings in companies for d in deployment_specs(settings)]
    if flows is None:
        return specs
    known = {d.flow.name for _, d in specs}
    if unknown := set(flows) - known:
        raise ConfigError(f"no deployment of the flow(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    return [(settings, d) for settings, d in specs if d.flow.name in flows]


def runner_deployments(*companies: Settings, flows: Collection[str] | None = None) -> list[RunnerDeployment]:
    """The deployments of each company (settings) given, for ``serve``: one process for all;
    only those of the named ``flows`` when given (registering all 54 costs seconds of CPU)."""
    return [
        d.flow.to_deployment(
            name=d.name,
            schedules=[Cron(s["cron"], timezone=s["timezone"], active=s["active"]) for s in schedules_of(d, settings)],
            parameters=d.parameters,
            description=d.description,
            concurrency_limit=1,
            tags=list(d.tags),
        )
        for settings, d in chosen_specs(*companies, flows=flows)
    ]


def job_variables() -> dict[str, Any]:
    """A worker's run of any deployment: its process beats as the crash detection expects."""
    return {"env": heartbeat_env()}


def render_prefect_yaml(*companies: Settings) -> str:
    """prefect.yaml for a process work pool, from the same list ``serve`` uses: each company's
    (settings') deployments."""
    deployments = [
        {
            "name": d.name,
            "entrypoint": d.entrypoint,
            "description": d.description,
            "tags": list(d.tags),
            "concurrency_limit": 1,
            "parameters": d.parameters,
            "schedules": schedules_of(d, settings),
            "work_pool": {"name": WORK_POOL, "work_queue_name": "default", "job_variables": job_variables()},
        }
        for settings in companies for d in deployment_specs(settings)
    ]
    document = {
        "name": "procore-sync",
        "prefect-version": "3.8.8",
        "pull": PULL_STEPS,
        "deployments": deployments,
    }
    header = (
        "# Generated by `procore-sync deployments --write` from deployments/__init__.py; do not edit.\n"
        "# See docs/deployments.md:\n"
        "#   procore-sync deployments --apply    (the work pool and these deployments on the server)\n"
        "#   PROCORE_SYNC_DIR=$PWD prefect worker start --pool procore-sync\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=120)
