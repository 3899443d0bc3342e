"""An entity run's record counts as labels on its Prefect flow run, for the alerts to read.

Prefect renders an automation's message on the server, from the flow run it reads back from the
API when the run's state changes (``deployments/alerts.py``). Labels are the part of a flow run
that procore-sync can write and a message template can read (``flow_run.labels``), so the alert
for a failed run says how many records failed, were blocked, created and updated before it
stopped. They are written before the run's final state is set, so they are there when the
alert reads the run; a state message would only carry them by changing every error's text, and
an event of our own cannot be read by the template of Prefect's Failed event.

Only where an alert can read them: a run that failed or was deferred (AwaitingQuota), and a run
that ran again after one of those (its run count above 1), whose earlier labels would otherwise
stay; an ordinary completed run, the usual case, costs no call.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext

PREFIX = "procore-sync."
COUNTED = ("failed", "blocked", "created", "updated", "unchanged", "warnings")
_ALERTED = {"failed", "deferred"}


def label_run(status: str, counts: Mapping[str, int]) -> None:
    """Write ``procore-sync.status`` and the counts on the current flow run, where needed."""
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or (status not in _ALERTED and run.run_count <= 1):
        return
    labels: dict[str, str | int] = {f"{PREFIX}status": status}
    labels |= {f"{PREFIX}{name}": int(counts.get(name, 0)) for name in COUNTED}
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(run.id, labels)
    except httpx.HTTPError as exc:  # the run's outcome stands; only its alert lacks the counts
        get_run_logger().warning(
            "the record counts could not be written on flow run %s (%s): its alert will say they were "
            "not recorded; `procore-sync status` has them", run.id, exc)
