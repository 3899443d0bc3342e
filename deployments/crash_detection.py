"""A deployment run whose process is gone ends Crashed: Prefect's heartbeats and one automation.

A worker marks a run Crashed when the run's process exits badly, but not when the worker goes
with it (a host lost, SIGKILL to the worker and its children): nothing is left to say so, and
the run stays Running forever, which ``retry-failed-runs`` never retries and the failed-run
alert never reports. Prefect's answer is the flow run heartbeat (an event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds from the run's process) and a proactive automation:
no event of the run within ``MISSED`` heartbeats after one, and the server sets it Crashed.

The deployments carry the frequency (``HEARTBEAT_S``, Prefect's shortest: a worker's job
variables, the serve process's settings), so the automation's wait matches what the runs send.
Only runs tagged by our deployments are watched: a run started from the CLI beats at Prefect's
default, more slowly. Entity runs inside sync-all send no heartbeat of their own (their
parent's speaks for them, ``flows.run_inside``) and are not watched. Any event of the run (a
heartbeat, a state change such as a pause for quota) keeps it alive; the action is not forced,
so a run that meanwhile ended keeps its final state.

Installed with the deployments, created or updated by name; it needs no notification block.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from deployments.automations import upsert

NAME = "procore-sync: run's process gone"
HEARTBEAT = "prefect.flow-run.heartbeat"
# Prefect's shortest heartbeat (its setting refuses less), and how many may go missing before a
# run is called crashed: one late beat on a busy host is not a death.
HEARTBEAT_S = 30
MISSED = 3
# The tags of every procore-sync deployment (sync and maintenance); runs carry their deployment's.
WATCHED_TAGS = ("procore-sync", "procore-sync-maintenance")


def heartbeat_env() -> dict[str, str]:
    """The environment of a deployment's run process that makes it beat every ``HEARTBEAT_S``."""
    return {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}


def crash_detection(lost_after: timedelta = timedelta(seconds=HEARTBEAT_S * MISSED)) -> AutomationCore:
    """The automation: a watched run with no event for ``lost_after`` after a heartbeat is Crashed."""
    trigger = EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "tag",
                       "prefect.resource.id": [f"prefect.tag.{tag}" for tag in WATCHED_TAGS]},
        after={HEARTBEAT}, expect={"prefect.flow-run.*"}, for_each={"prefect.resource.id"},
        posture=Posture.Proactive, threshold=1, within=lost_after,
    )
    message = (f"No heartbeat from the run's process for {lost_after.total_seconds():.0f} s: its worker or "
               "host is gone. The retry-failed-runs deployment runs it again.")
    return AutomationCore(
        name=NAME, description="Marks a procore-sync deployment run Crashed when its process stops beating.",
        enabled=True, tags=["procore-sync"], trigger=trigger,
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=message)],
    )


def install_crash_detection(lost_after: timedelta | None = None) -> UUID:
    """Create or update the automation by name; returns its id."""
    automation = crash_detection(lost_after) if lost_after is not None else crash_detection()
    with get_client(sync_client=True) as client:
        return upsert(client, automation)
