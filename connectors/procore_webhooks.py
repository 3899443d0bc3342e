"""Procore's Webhooks API (v1.0) through the one Procore client: hooks, triggers, deliveries.

A thin layer: each method is one documented operation (``sandbox/openapi/`` holds them), sent
through ``ProcoreClient``, so auth, the company header, pacing and the retries of transient
failures are the client's. Every call names the company as its scope (procore-sync installs
one company hook, which also hears the company's projects).

Two operations are not safe to resend blindly and are handled here:

- creating a hook is a plain POST: after a 5xx or a lost answer it may have landed, so
  ``ProcoreClient.create`` looks it up (by namespace and destination URL) before trying again;
- bulk trigger creation answers 207 when Procore refused some: they come back as
  ``TriggersRefused``, naming each one and Procore's reason.

Procore shows a hook's ``Authorization`` masked to its last 5 characters; ``same_secret`` is what
can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.procore import ProcoreClient
from connectors.procore_paging import json_body
from procore_sync.errors import ConfigError

HOOKS = "/rest/v1.0/webhooks/hooks"
PAYLOAD_VERSION = "v2"  # the legacy payload: event_type, resource_name, metadata (see docs/webhooks.md)
MAX_BULK = 500
MASK_SHOWN = 5


class TriggersRefused(ConfigError):
    """Procore refused triggers (a resource or event type it does not offer in this scope)."""

    hint = ("check the resource names against Procore's webhook resources for the company "
            "(Company Admin → Webhooks), or leave the entity out of webhooks")


@dataclass(frozen=True)
class TriggerKey:
    """What a trigger subscribes to: a resource name and an event type (lowercase)."""

    resource_name: str
    event_type: str

    def __str__(self) -> str:
        return f"{self.resource_name} {self.event_type}"


def trigger_key(trigger: dict[str, Any]) -> TriggerKey:
    # Procore's trigger schema spells event types in capitals; requests and payloads in lowercase.
    return TriggerKey(str(trigger["resource_name"]), str(trigger["event_type"]).lower())


def same_secret(hook: dict[str, Any], authorization: str) -> bool:
    """Whether the hook's (masked) Authorization header can be ``authorization``."""
    shown = str((hook.get("destination_headers") or {}).get("Authorization") or "")
    return shown[-MASK_SHOWN:] == authorization[-MASK_SHOWN:]


class WebhooksApi:
    """The webhook operations of one company."""

    def __init__(self, client: ProcoreClient, company_id: int) -> None:
        self._client = client
        self._company_id = company_id

    @property
    def _scope(self) -> dict[str, Any]:
        return {"company_id": self._company_id}

    # --- hooks -------------------------------------------------------------------------------

    def hooks(self, namespace: str) -> list[dict[str, Any]]:
        return list(self._client.get(HOOKS, {**self._scope, "namespace": namespace}))

    def find_hook(self, namespace: str, url: str) -> dict[str, Any] | None:
        return next((hook for hook in self.hooks(namespace) if hook.get("destination_url") == url), None)

    def create_hook(self, namespace: str, url: str, authorization: str) -> dict[str, Any]:
        hook = {"api_version": PAYLOAD_VERSION, "namespace": namespace, "destination_url": url,
                "destination_headers": {"Authorization": authorization}}
        found: dict[str, Any] = self._client.create(
            HOOKS, json={**self._scope, "hook": hook}, look_up=lambda: self.find_hook(namespace, url))
        return found

    def set_authorization(self, hook_id: int, authorization: str) -> dict[str, Any]:
        body = {**self._scope, "hook": {"destination_headers": {"Authorization": authorization}}}
        return dict(json_body(self._client.request("PATCH", f"{HOOKS}/{hook_id}", json=body)))

    def delete_hook(self, hook_id: int) -> None:
        self._client.request("DELETE", f"{HOOKS}/{hook_id}", params=self._scope)

    # --- triggers ----------------------------------------------------------------------------

    def triggers(self, hook_id: int) -> list[dict[str, Any]]:
        return list(self._client.get(f"{HOOKS}/{hook_id}/triggers", self._scope))

    def create_triggers(self, hook_id: int, wanted: Iterable[TriggerKey]) -> list[dict[str, Any]]:
        """Bulk create, 500 a call; raise ``TriggersRefused`` naming what Procore refused."""
        wanted = list(wanted)
        created: list[dict[str, Any]] = []
        refused: list[str] = []
        for start in range(0, len(wanted), MAX_BULK):
            triggers = [{"resource_name": key.resource_name, "event_type": key.event_type}
                        for key in wanted[start:start + MAX_BULK]]
            body = {**self._scope, "api_version": PAYLOAD_VERSION, "triggers": triggers}
            answer = json_body(self._client.request("POST", f"{HOOKS}/{hook_id}/triggers/bulk", json=body))
            created += answer.get("success") or []
            refused += [f"{error.get('trigger')}: {error.get('errors')}" for error in answer.get("errors") or []]
        if refused:
            raise TriggersRefused(f"Procore refused {len(refused)} webhook triggers: " + "; ".join(refused))
        return created

    def delete_triggers(self, hook_id: int, trigger_ids: list[int]) -> None:
        for start in range(0, len(trigger_ids), MAX_BULK):
            body = {**self._scope, "trigger_ids": trigger_ids[start:start + MAX_BULK]}
            self._client.request("DELETE", f"{HOOKS}/{hook_id}/triggers/bulk", json=body)

    # --- deliveries --------------------------------------------------------------------------

    def deliveries(self, hook_id: int, status: str = "any", page_size: int = 100) -> list[dict[str, Any]]:
        """The hook's latest deliveries (newest first): ``any``, ``successful``, ``failing`` or
        ``discarded``."""
        params = {**self._scope, "filters[status]": status, "page_size": page_size}
        return list(self._client.get(f"{HOOKS}/{hook_id}/deliveries", params))
