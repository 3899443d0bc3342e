"""The deployments put on the process work pool directly, as ``prefect deploy --all`` puts those of
the rendered prefect.yaml: same names, entrypoints, parameters, schedules, tags, pull step and
job variables (``render_prefect_yaml`` and this module read one list, ``deployment_specs``).

``procore-sync deployments --apply`` runs it. Prefect 3.8.8's ``prefect deploy`` creates the
first deployment, then asks the server for the pool's workers with a null ``limit``, which the
server refuses (422), so it stops there; this path asks nothing of the sort.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import Flow, get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.schedules import Cron
from prefect.utilities.callables import parameter_schema

from deployments import PULL_STEPS, WORK_POOL, DeploymentSpec, job_variables, schedules_of
from procore_sync.settings import Settings


def apply_to_work_pool(specs: list[tuple[Settings, DeploymentSpec]]) -> int:
    """Create or update the deployments (``deployments.chosen_specs``: each with its company's
    settings) on the work pool (created if missing); returns how many."""
    with get_client(sync_client=True) as client:
        ensure_work_pool(client)
        flows = {d.flow.name: (client.create_flow_from_name(d.flow.name), _schema(d.flow)) for _, d in specs}
        for settings, d in specs:
            client.create_deployment(**_payload(settings, d, *flows[d.flow.name]))  # an upsert by flow and name
    return len(specs)


def ensure_work_pool(client: SyncPrefectClient) -> None:
    try:
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
    except ObjectAlreadyExists:
        pass


def _schema(flow: Flow) -> dict[str, Any]:
    return parameter_schema(flow).model_dump(exclude_unset=True)


def _payload(settings: Settings, d: DeploymentSpec, flow_id: UUID, schema: dict[str, Any]) -> dict[str, Any]:
    schedules = [DeploymentScheduleCreate.from_schedule(Cron(s["cron"], timezone=s["timezone"], active=s["active"]))
                 for s in schedules_of(d, settings)]
    return {
        "flow_id": flow_id, "name": d.name, "entrypoint": d.entrypoint,
        "description": d.description, "tags": list(d.tags), "concurrency_limit": 1, "parameters": d.parameters,
        "schedules": schedules, "work_pool_name": WORK_POOL, "work_queue_name": "default",
        "job_variables": job_variables(), "pull_steps": PULL_STEPS,
        "parameter_openapi_schema": schema,
        "enforce_parameter_schema": True,
    }
