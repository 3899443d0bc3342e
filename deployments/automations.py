"""Prefect automations created or updated by name: installing twice leaves one of each."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.events.schemas.automations import AutomationCore


def upsert(client: SyncPrefectClient, automation: AutomationCore) -> UUID:
    existing = client.read_automations_by_name(automation.name)
    if not existing:
        return client.create_automation(automation)
    keep, *extra = sorted(existing, key=lambda a: str(a.id))
    for duplicate in extra:  # two installs racing: one each is enough
        client.delete_automation(duplicate.id)
    client.update_automation(keep.id, automation)
    return keep.id
