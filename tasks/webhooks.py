"""Installing procore-sync's Procore webhook, removing it, and telling whether it is healthy.

One company hook in ``settings.webhook_namespace``, sending to ``settings.webhook_url`` with
``Authorization: Bearer <webhook_secret>``, and one trigger per (resource name, event type) the
configured entities need: each entity declares Procore's webhook resource names of what it
writes or reads (``webhook_resources`` on its spec); the entities are the ones sync-all runs
(``flows.configured_resources``: the budget tool the company does not use is left out).

- ``install`` is idempotent: it finds the hook by namespace and destination URL (a hook of
  another URL in the namespace is left alone: it may be another installation's), creates it
  only when missing, puts the current secret on it when Procore shows another one, and adds
  only the triggers it lacks. Run twice, nothing doubles; a run cut short is finished by the next.
- ``uninstall`` removes the hook of this namespace and URL (its triggers go with it, after being
  deleted themselves so nothing is left if Procore keeps orphans).
- ``health`` reads the hook, its triggers and its latest deliveries (Procore's deliveries API):
  red when the hook or triggers are missing, when an event is failing now (the endpoint's queue
  is paused, retried with backoff), or when any of the latest deliveries was discarded (12 h of
  failures: those changes reach the ERP only through the scheduled sync). A red report is
  also a Prefect event (``UNHEALTHY_EVENT``), which the webhooks alert sends on
  (``deployments/alerts.py``): from the command, and from every sync-all that checks the hook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prefect.events import emit_event
from pydantic import BaseModel

from connectors.procore_webhooks import TriggerKey, WebhooksApi, same_secret, trigger_key
from procore_sync.errors import ConfigError
from procore_sync.secrets import reveal
from procore_sync.settings import Settings

EVENT_TYPES = ("create", "update", "delete")
UNHEALTHY_EVENT = "procore-sync.webhooks.unhealthy"
# Event types Procore does not offer for a resource (its webhook resources list, "except").
UNSENT_EVENTS: dict[str, frozenset[str]] = {
    "Projects": frozenset({"delete"}),
    "Company Vendors": frozenset({"delete"}),
    "Company Users": frozenset({"delete"}),
}
RECENT_DELIVERIES = 100


def wanted_triggers(resources: list[str]) -> list[TriggerKey]:
    return [TriggerKey(name, event) for name in resources for event in EVENT_TYPES
            if event not in UNSENT_EVENTS.get(name, frozenset())]


def authorization(settings: Settings) -> str:
    secret = reveal(settings.webhook_secret)
    if not secret:
        raise ConfigError("no webhook secret: set PROCORE_SYNC_WEBHOOK_SECRET (a value, or "
                          '{"env": ...} / {"prefect_secret": ...}); the receiver accepts only events carrying it')
    return f"Bearer {secret}"


@dataclass
class Installed:
    hook_id: int
    created: bool
    secret_updated: bool
    added: list[TriggerKey] = field(default_factory=list)
    kept: int = 0


def install(api: WebhooksApi, settings: Settings, resources: list[str]) -> Installed:
    """Make Procore hold the hook and every trigger ``resources`` need; add only what is missing."""
    auth = authorization(settings)
    hook = api.find_hook(settings.webhook_namespace, settings.webhook_url)
    created = hook is None
    if hook is None:
        hook = api.create_hook(settings.webhook_namespace, settings.webhook_url, auth)
    secret_updated = not created and not same_secret(hook, auth)
    if secret_updated:
        api.set_authorization(int(hook["id"]), auth)
    have = {trigger_key(trigger) for trigger in api.triggers(int(hook["id"]))}
    missing = [key for key in wanted_triggers(resources) if key not in have]
    if missing:
        api.create_triggers(int(hook["id"]), missing)
    return Installed(int(hook["id"]), created, secret_updated, missing, len(have))


def uninstall(api: WebhooksApi, settings: Settings) -> int | None:
    """Remove the hook of this namespace and URL with its triggers; its id, or None if absent."""
    hook = api.find_hook(settings.webhook_namespace, settings.webhook_url)
    if hook is None:
        return None
    trigger_ids = [int(trigger["id"]) for trigger in api.triggers(int(hook["id"]))]
    if trigger_ids:
        api.delete_triggers(int(hook["id"]), trigger_ids)
    api.delete_hook(int(hook["id"]))
    return int(hook["id"])


class WebhookHealth(BaseModel):
    """What ``procore-sync webhooks health-check`` reports (``--json``: this, as one object)."""

    status: str  # OK | not installed | missing triggers | failing | discarded
    namespace: str
    destination_url: str
    hook_id: int | None = None
    triggers: list[str] = []
    missing_triggers: list[str] = []
    # Outcomes of the latest deliveries (ok, retried, discarded), and the events failing now.
    outcomes: dict[str, int] = {}
    failing: int = 0
    discarded: int = 0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.status == "OK"


def health(api: WebhooksApi, settings: Settings, resources: list[str]) -> WebhookHealth:
    report = _health(api, settings, resources)
    if not report.healthy:
        tell_prefect(report)
    return report


def tell_prefect(report: WebhookHealth) -> None:
    """The red report as a Prefect event on the hook (by namespace: a missing hook has no id),
    related to the flow run that checked, if any, for the alert's link."""
    emit_event(UNHEALTHY_EVENT,
               resource={"prefect.resource.id": f"procore-sync.webhook.{report.namespace}",
                         "prefect.resource.name": f"{report.namespace} → {report.destination_url}"},
               payload=report.model_dump(mode="json"))


def _health(api: WebhooksApi, settings: Settings, resources: list[str]) -> WebhookHealth:
    report = WebhookHealth(status="not installed", namespace=settings.webhook_namespace,
                           destination_url=settings.webhook_url)
    hook = api.find_hook(settings.webhook_namespace, settings.webhook_url)
    if hook is None:
        return report
    hook_id = int(hook["id"])
    have = {trigger_key(trigger) for trigger in api.triggers(hook_id)}
    recent = api.deliveries(hook_id, "any", RECENT_DELIVERIES)
    failing = api.deliveries(hook_id, "failing", RECENT_DELIVERIES)
    outcomes = Counter(str(delivery.get("outcome")) for delivery in recent)
    report = report.model_copy(update={
        "hook_id": hook_id, "triggers": sorted(map(str, have)),
        "missing_triggers": [str(key) for key in wanted_triggers(resources) if key not in have],
        "outcomes": dict(outcomes), "failing": len(failing), "discarded": outcomes["discarded"],
        "last_error": _last_error(failing or recent),
    })
    return report.model_copy(update={"status": _status(report)})


def _status(report: WebhookHealth) -> str:
    if report.missing_triggers:
        return "missing triggers"
    if report.failing:
        return "failing"
    if report.discarded:
        return "discarded"
    return "OK"


def _last_error(deliveries: list[dict[str, Any]]) -> str | None:
    for delivery in deliveries:
        if delivery.get("outcome") != "ok":
            status = delivery.get("response_status")
            return f"{delivery.get('completed_at')}: " + (f"HTTP {status}" if status else str(delivery.get("response_error")))
    return None


def left_to_webhooks(api: WebhooksApi, settings: Settings, resources: list[str],
                     cursors: Mapping[str, datetime | None], now: Callable[[], datetime]) -> tuple[set[str], str]:
    """The Procore → ERP entities (of ``cursors``: each one's last full read) that sync-all need
    not poll now, and why, for its log.

    Webhooks bring their changes within seconds while the hook is healthy: then polling is the
    safety net for what a delivery never brought (an event Procore discarded or never sent), and
    an entity is polled once its last full read is ``webhook_sweep_s`` old. A hook that is
    missing, missing triggers, failing or discarding means every entity is polled, as without
    webhooks. Four calls (the hook, its triggers, its deliveries twice) instead of one or more
    per project and entity. ``now`` is asked after those calls: Procore's clock, as the cursors are.
    """
    report = health(api, settings, resources)
    if not report.healthy:
        return set(), f"webhooks {report.status}: every Procore → ERP entity is polled"
    sweep = timedelta(seconds=settings.webhook_sweep_s)
    at = now()
    left = {name for name, cursor in cursors.items() if cursor is not None and at - cursor < sweep}
    polled = sorted(set(cursors) - left)
    return left, (f"webhooks healthy: {', '.join(sorted(left)) or 'no entity'} left to them until their next sweep "
                  f"(every {settings.webhook_sweep_s:g} s); polled now: {', '.join(polled) or 'none'}")


def polling_left_to_webhooks(settings: Settings, inbound: list[str], resources: list[str]) -> tuple[set[str], str]:
    """``left_to_webhooks`` for sync-all's Procore → ERP entities ``inbound``, the hook carrying
    the triggers of ``resources`` (``flows.configured_resources``): nothing is left,
    and no call made, without a webhook secret (no receiver) or with ``webhook_sweep_s`` 0."""
    if not settings.webhook_sweep_s or settings.webhook_secret is None or not inbound:
        return set(), ""
    from connectors.procore import ProcoreClient
    from connectors.quota import quota_gate
    from connectors.state import StateStore, utc_now

    store = StateStore.open(settings)
    with ProcoreClient(settings, before_request=quota_gate(settings), shared_window=True) as client:
        return left_to_webhooks(WebhooksApi(client, settings.company_id), settings, resources,
                                {name: store.get_cursor(name) for name in inbound},
                                lambda: client.procore_time or utc_now())
