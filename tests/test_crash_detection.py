"""A deployment run whose process went silent ends Crashed (``deployments/crash_detection.py``):
the automation on the session's real Prefect server, fed heartbeats as a run's process sends them.

The automation is installed with Prefect's shortest wait for a proactive trigger (10 s) for this
module only, and deleted at its end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID

import pytest
import yaml
from prefect import flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event
from prefect.events.related import tags_as_related_resources
from prefect.events.worker import EventsWorker
from prefect.states import Completed, Running

from deployments import render_prefect_yaml
from deployments.crash_detection import HEARTBEAT, HEARTBEAT_S, MISSED, crash_detection, install_crash_detection
from procore_sync.settings import Settings
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")

LOST = timedelta(seconds=10)


@pytest.fixture
def installed() -> Iterator[UUID]:
    automation_id = install_crash_detection(LOST)
    assert install_crash_detection(LOST) == automation_id  # by name: installing twice leaves one
    yield automation_id
    with get_client(sync_client=True) as client:
        client.delete_automation(automation_id)


@flow(name="crash-detection-probe")
def probe() -> None: ...


def started(*tags: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.create_flow_run(probe, tags=list(tags), state=Running())


def beat(run: FlowRun) -> None:
    """A heartbeat as the run's process sends it (Prefect's flow engine: the run, its tags)."""
    emit_event(HEARTBEAT, resource={"prefect.resource.id": f"prefect.flow-run.{run.id}"},
               related=tags_as_related_resources(set(run.tags)))


def state_of(run: FlowRun) -> str:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state is not None
    return state.type.value


def test_a_silent_deployment_run_is_crashed_and_nothing_else(installed: UUID) -> None:
    gone, alive, finished, untagged = (started("procore-sync", "sync-all"), started("procore-sync-maintenance"),
                                       started("procore-sync"), started())
    for run in (gone, alive, finished, untagged):
        beat(run)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(finished.id, Completed())
    EventsWorker.drain_all(timeout=10)

    def crashed() -> bool | None:
        beat(alive)  # a live process keeps beating while the others are silent
        EventsWorker.drain_all(timeout=10)
        return True if state_of(gone) == "CRASHED" else None

    wait_for(crashed, "the silent run to be marked Crashed", timeout_s=90)

    with get_client(sync_client=True) as client:
        message = client.read_flow_run(gone.id).state.message  # type: ignore[union-attr]
    assert "No heartbeat from the run's process for 10 s" in (message or "")
    assert (state_of(alive), state_of(finished), state_of(untagged)) == ("RUNNING", "COMPLETED", "RUNNING")


def test_a_worker_run_beats_within_the_automation_s_wait() -> None:
    """The runs a worker starts beat every HEARTBEAT_S (prefect.yaml's job variables); the
    automation waits for MISSED of them."""
    [variables] = {str(d["work_pool"]["job_variables"]) for d in
                   yaml.safe_load(render_prefect_yaml(Settings()))["deployments"]}
    assert variables == str({"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}})
    assert crash_detection().trigger.within == timedelta(seconds=HEARTBEAT_S * MISSED)
