"""The deployments: one per entity flow plus its ``<entity>-full-resync`` variant.

``prefect.yaml`` declares the same deployments for a work pool and workers; this module builds
them for ``serve`` (what ``procore-sync demo`` runs), from the same schedule settings. A test
keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows import ENTITY_FLOWS
from procore_sync.settings import Settings


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entity: str
    entrypoint: str
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def deployment_specs(settings: Settings) -> list[DeploymentSpec]:
    specs = []
    for name, (spec, flow) in ENTITY_FLOWS.items():
        entrypoint = f"flows/{name}.py:{flow.fn.__name__}"
        specs.append(DeploymentSpec(name, name, entrypoint, settings.schedule_cron,
                                    description=f"Scheduled sync of {spec.display_name}."))
        specs.append(DeploymentSpec(
            f"{name}-full-resync", name, entrypoint, settings.full_resync_cron,
            parameters={"options": {"full_resync": True}},
            description=f"Full resync of {spec.display_name}: ignores the last synchronisation date.",
        ))
    return specs


def runner_deployments(settings: Settings) -> list[RunnerDeployment]:
    return [
        ENTITY_FLOWS[d.entity][1].to_deployment(
            name=d.name,
            schedules=[Cron(d.cron, timezone=settings.schedule_timezone)],
            parameters=d.parameters,
            description=d.description,
            concurrency_limit=1,
            tags=["procore-sync", d.entity],
        )
        for d in deployment_specs(settings)
    ]
