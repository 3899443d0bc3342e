"""Execute the write actions of a plan through Procore's batch (sync) endpoint.

Every item carries its ERP key as ``origin_id``, so a batch is an upsert: sending it again after
a lost answer or a killed process updates what already landed instead of duplicating it. That is
what makes the client's HTTP retries of a sync call safe, and why no other layer retries it.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.procore import ProcoreClient, SyncResult
from connectors.state import Outcome
from tasks.plan import Action
from tasks.spec import EntitySpec


def scope_for(spec: EntitySpec, company_id: int) -> dict[str, int]:
    return {"company_id": company_id}


def load_batch(
    client: ProcoreClient, spec: EntitySpec, actions: Sequence[Action], company_id: int
) -> list[Outcome]:
    """Send one batch (≤ 1,000 actions) in one sync call and say what became of each record."""
    result = client.sync(
        spec.sync_path,
        scope=scope_for(spec, company_id),
        items=[action.item() for action in actions],
        batch_size=len(actions),
    )
    return outcomes_of(spec, actions, result)


def outcomes_of(spec: EntitySpec, actions: Sequence[Action], result: SyncResult) -> list[Outcome]:
    landed = result.by_origin_id()
    rejected = {error.origin_id: error for error in result.errors}
    return [_outcome(spec, action, landed, rejected) for action in actions]


def _outcome(spec: EntitySpec, action: Action, landed: dict, rejected: dict) -> Outcome:
    entity = landed.get(action.key)
    if entity is not None:
        return done_outcome(action, int(entity["id"]))
    error = rejected.get(action.key)
    reason = error.text if error else "Procore returned neither the record nor an error for it"
    return failed_outcome(action, f"Procore rejected {spec.name} {action.key}: {reason}")


def done_outcome(action: Action, procore_id: int | None) -> Outcome:
    """A record that is in Procore as planned (created, updated, or unchanged and skipped)."""
    return Outcome(
        key=action.key,
        action=action.kind,
        status="warning" if action.warnings else "ok",
        procore_id=procore_id,
        payload_hash=action.payload_hash,
        message="; ".join(action.warnings) or None,
        source_updated_at=action.source_updated_at,
    )


def failed_outcome(action: Action, message: str) -> Outcome:
    return Outcome(
        key=action.key,
        action="fail",
        status="failed",
        procore_id=action.procore_id,
        message=message,
        source_updated_at=action.source_updated_at,
    )
