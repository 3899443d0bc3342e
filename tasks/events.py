"""Procore's webhook events: what each one asks of procore-sync (docs/webhooks.md).

The receiver (``app/receiver.py``) keeps every event as it arrives. ``decide`` says
what to do with one, from the entities' declarations alone, with no I/O:

- **Echo.** procore-sync caused it: its application's write (``metadata.source_application_id``).
  It is dropped, so nothing echoes back and forth.
- **Run.** A record of a Procore → ERP entity changed (a change order approved in the field): a
  targeted run of that entity reads that one record (its ERP key, ``<project number>|<Procore
  id>``). An event that names something else (a budget change's line; a change order's package,
  the only webhook resource Procore has for change orders, with an id of its own) makes the run
  read that project: a list call, and in full only what changed. Commitment and prime change
  orders share the package resource: both entities read the project.
- **Drift.** A record of an ERP → Procore entity was created, edited or deleted in Procore by
  someone else. The ERP is the master: it is reported with what the operator can do, never
  written back to the ERP.
- **Ignored**, with why: a resource nobody syncs, a project procore-sync does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from connectors.state import WebhookEvent
from tasks.inbound import InboundSpec, Project
from tasks.spec import EntitySpec

Verdict = Literal["run", "echo", "drift", "ignored"]
ECHO = "caused by procore-sync's own write: dropped"


@dataclass(frozen=True)
class Decision:
    """What to do about one event, for one entity: a run reads ``erp_key`` or, for a line's
    event, the whole ``project`` (its ERP number)."""

    verdict: Verdict
    message: str
    entity: str | None = None
    erp_key: str | None = None
    project: str | None = None


def decide(event: WebhookEvent, *, inbound: Sequence[InboundSpec], outbound: Sequence[EntitySpec],
           projects: Mapping[str, str], own_application_ids: Collection[str],
           key_of: Callable[[str, str], str | None]) -> list[Decision]:
    """Every entity's decision about ``event``; ``projects`` maps Procore project ids to ERP
    numbers, ``key_of(entity, procore_id)`` finds a record's ERP key in the state."""
    metadata = event.payload.get("metadata") or {}
    if str(metadata.get("source_application_id") or "") in own_application_ids:
        return [Decision("echo", ECHO)]
    matched = [decision for spec in inbound if (decision := _inbound(event, spec, projects)) is not None]
    if matched:
        runs = [decision for decision in matched if decision.verdict == "run"]
        return runs or matched[:1]
    drifted = [spec for spec in outbound if event.resource_name in spec.webhook_resources]
    if drifted:
        return [_drift(event, drifted, key_of)]
    return [Decision("ignored", f"procore-sync syncs no {event.resource_name!r} records")]


def _inbound(event: WebhookEvent, spec: InboundSpec, projects: Mapping[str, str]) -> Decision | None:
    if event.resource_name not in spec.webhook_resources:
        return None
    by_project = event.resource_name in spec.webhook_project_resources
    number = projects.get(event.project_id or "")
    if number is None:
        return Decision("ignored", f"{event.resource_name} {event.resource_id} is in Procore project "
                                   f"{event.project_id}, which procore-sync does not sync", entity=spec.name)
    if by_project:
        return Decision("run", f"{event.resource_name} {event.resource_id} of project {number} "
                               f"{_past(event.event_type)}: the project is read", entity=spec.name, project=number)
    key = Project(int(event.project_id or 0), number).key(event.resource_id)
    return Decision("run", f"{_past(event.event_type)} in Procore: read again", entity=spec.name, erp_key=key)


def _drift(event: WebhookEvent, specs: Sequence[EntitySpec], key_of: Callable[[str, str], str | None]) -> Decision:
    """The ERP is the master of these records: say what happened and what the operator can do."""
    found = [(spec, key) for spec in specs if (key := key_of(spec.name, event.resource_id)) is not None]
    if not found:
        return Decision("drift", f"{event.resource_name} {event.resource_id} was {_past(event.event_type)} in "
                                 f"Procore; it is no record procore-sync wrote: the ERP is the master, so add it "
                                 f"to the ERP to keep it, or remove it in Procore", entity=specs[0].name)
    spec, key = found[0]
    what = f"{spec.display_name} {key} (Procore id {event.resource_id})"
    if event.event_type == "delete":
        message = (f"{what} was deleted in Procore, and the ERP still has it: its next update finds it "
                   f"deleted; resync-failed with recreate_deleted creates it again")
    else:
        message = (f"{what} was edited in Procore; the ERP is the master: the record's next change in the "
                   f"ERP sends the ERP's values again, or put them back in Procore")
    return Decision("drift", message, entity=spec.name, erp_key=key)


def _past(event_type: str) -> str:
    return {"create": "created", "update": "edited", "delete": "deleted"}.get(event_type, event_type)
