"""Alerts: Prefect automations that tell the operator, instead of waiting to be looked at.

Four alerts, declared here as data (``alerts``: a name, a trigger on Prefect's events, a subject
and a message) and created with the deployments (``install_alerts``):

- a procore-sync flow run Failed or Crashed (every flow of the deployments, health-check aside);
- a run left in AwaitingQuota longer than ``alert_quota_wait_s`` (a proactive trigger: no state
  change of the run within that time after it was deferred);
- the health check red (its run Failed or Crashed);
- Procore's webhook deliveries failing (the ``procore-sync.webhooks.unhealthy`` event the
  webhooks health check emits, ``tasks/webhooks.py``, also from every sync-all that checks it).

Each sends its message through the notification block the operator names in
``PROCORE_SYNC_ALERT_BLOCK`` (``procore-sync alerts set-webhook`` creates one: a webhook, or a
Slack-compatible incoming webhook); without it no alert is created, and the log says so.
Prefect's server renders the messages (Jinja, with the run, its flow and deployment read from
the API): the run's name, state and message, a link to it in the UI, and the record counts the
engine left on the run's labels (``tasks/run_labels.py``). Runs are matched by their flow's
name, so a run started by a deployment, by hand or inside sync-all (an entity's run there has
no deployment and no tags) is covered alike.

Created or updated by name: installing twice leaves one automation per alert, and a changed
template or setting replaces the old one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from prefect import get_client
from prefect.blocks.core import Block
from prefect.types import SecretDict
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.orchestration import SyncPrefectClient
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import PREFECT_UI_URL
from pydantic import SecretStr

from deployments import deployment_specs
from deployments.automations import upsert
from procore_sync.errors import ConfigError
from procore_sync.settings import Settings
from tasks.run_labels import PREFIX
from tasks.webhooks import UNHEALTHY_EVENT

logger = logging.getLogger(__name__)

HEALTH_FLOW = "health-check"
FAILED, QUOTA, HEALTH, WEBHOOKS = ("procore-sync: run failed", "procore-sync: waiting for quota",
                                   "procore-sync: health check red", "procore-sync: webhook deliveries failing")
# The states a deferred run passes through once it is picked up again (or given up): any of
# them ends its wait. Not Late: a run whose resume time passed with nobody to start it is
# still waiting, which is what the alert is for.
LEFT_THE_WAIT = {f"prefect.flow-run.{state}" for state in
                 ("Pending", "Running", "Completed", "Failed", "Crashed", "Cancelling", "Cancelled")}


@dataclass(frozen=True)
class Alert:
    """One automation: when (``trigger``) and what it says (Jinja templates, rendered by Prefect)."""

    name: str
    description: str
    trigger: EventTrigger
    subject: str
    body: str

    def automation(self, block_id: UUID) -> AutomationCore:
        return AutomationCore(
            name=self.name, description=self.description, enabled=True, tags=["procore-sync"],
            trigger=self.trigger,
            actions=[SendNotification(block_document_id=block_id, subject=self.subject, body=self.body)],
        )


def flow_names(settings: Settings) -> list[str]:
    """The flows of every procore-sync deployment, health-check aside (it has its own alert)."""
    return sorted({d.flow.name for d in deployment_specs(settings)} - {HEALTH_FLOW})


def runs_of(flows: list[str], states: set[str], **options: object) -> EventTrigger:
    """A trigger on the state events of the named flows' runs, one firing per run."""
    return EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": flows},
        for_each={"prefect.resource.id"}, **options, expect=states,  # type: ignore[arg-type]
    )


def run_link() -> str:
    """The run's page. ``ui_url`` needs the server's own PREFECT_UI_URL, which a server started
    without PREFECT_API_URL lacks; the UI address this client reaches is the fallback."""
    here = PREFECT_UI_URL.value()
    fallback = f" or '{here.rstrip('/')}/runs/flow-run/' ~ flow_run.id" if here else ""
    return "{{ (flow_run|ui_url)" + fallback + " }}"


def counts() -> str:
    label = f"flow_run.labels['{PREFIX}"
    return (
        f"{{% if '{PREFIX}failed' in flow_run.labels %}}"
        f"Records: {{{{ {label}failed'] }}}} failed, {{{{ {label}blocked'] }}}} blocked, "
        f"{{{{ {label}created'] }}}} created, {{{{ {label}updated'] }}}} updated, "
        f"{{{{ {label}warnings'] }}}} with warnings (so far in this run)."
        "{% else %}Records: not recorded (the run stopped before procore-sync counted them; "
        "`procore-sync status` shows each entity's records).{% endif %}"
    )


def run_body(what: str, todo: str) -> str:
    return "\n".join([
        "{{ flow.name }} run {{ flow_run.name }}" + what,
        "{% if deployment %}Deployment: {{ deployment.name }}. {% endif %}"
        "State: {{ flow_run.state.name }}: {{ flow_run.state.message }}",
        counts(),
        "Open the run: " + run_link(),
        "What to do: " + todo,
    ])


def alerts(settings: Settings) -> list[Alert]:
    flows = flow_names(settings)
    wait = timedelta(seconds=settings.alert_quota_wait_s)
    return [
        Alert(FAILED, "A procore-sync flow run failed or crashed.",
              runs_of(flows, {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                      posture=Posture.Reactive, threshold=1, within=timedelta(0)),
              "procore-sync: {{ flow.name }} {{ flow_run.state.name }}",
              run_body(" {{ flow_run.state.name | lower }}.",
                       "the run's page shows its summary and failed records with their messages; fix the "
                       "cause, then run the retry-failed-runs deployment (same run, same parameters) or "
                       "resync-failed for the records.")),
        Alert(QUOTA, f"A procore-sync run waited for Procore's quota longer than {wait}.",
              runs_of(flows, LEFT_THE_WAIT, after={"prefect.flow-run.AwaitingQuota"},
                      posture=Posture.Proactive, threshold=1, within=wait),
              "procore-sync: {{ flow.name }} waiting for Procore's quota",
              run_body(f" has waited for Procore's quota for more than {wait} (since {{{{ event.occurred }}}}).",
                       "something else spends the company's Procore quota (other integrations share it), "
                       "or the run was not started again at its resume time: check that the serve process "
                       "or a worker is running; `procore-sync health-check` shows the quota left.")),
        Alert(HEALTH, "procore-sync's health check is red.",
              runs_of([HEALTH_FLOW], {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                      posture=Posture.Reactive, threshold=1, within=timedelta(0)),
              "procore-sync: health check red",
              run_body(": a check is not OK.",
                       "the run's table names each check that is not OK (ERP, sink, Procore token, "
                       "company, permissions, endpoints, quota) and what it found; fix it and run the "
                       "health-check deployment again.")),
        Alert(WEBHOOKS, "Procore's webhook deliveries to procore-sync are failing.",
              EventTrigger(expect={UNHEALTHY_EVENT}, match={"prefect.resource.id": "procore-sync.webhook.*"},
                           for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1,
                           within=timedelta(0)),
              "procore-sync: Procore webhook {{ event.payload.status }}",
              webhooks_body()),
    ]


def webhooks_body() -> str:
    return "\n".join([
        "Procore's webhook {{ event.resource['prefect.resource.name'] }}: {{ event.payload.status }}; "
        "{{ event.payload.failing }} deliveries failing now, {{ event.payload.discarded }} discarded"
        "{% if event.payload.missing_triggers %}, triggers missing: "
        "{{ event.payload.missing_triggers | join(', ') }}{% endif %}.",
        "{% if event.payload.last_error %}Last error: {{ event.payload.last_error }}{% endif %}",
        "{% if flow_run %}Seen by {{ flow.name }} run {{ flow_run.name }}: " + run_link() + "{% endif %}",
        "Meanwhile sync-all polls every Procore → ERP entity: changes arrive at its schedule, not within seconds.",
        "What to do: `procore-sync webhooks health-check` shows the hook and its deliveries; check that the "
        "receiver (`procore-sync webhooks serve`) answers at PROCORE_SYNC_WEBHOOK_URL from Procore, then "
        "`procore-sync webhooks install` restores missing triggers.",
    ])


def notification_block_id(client: SyncPrefectClient, reference: str) -> UUID:
    """The block ``reference`` names: ``<block-type-slug>/<name>`` or a notification block's name."""
    slug, _, name = reference.rpartition("/")
    found = [d for d in client.read_block_documents(offset=0, limit=200, include_secrets=False)
             if d.name == name and (d.block_type is not None and d.block_type.slug == slug if slug else
                                    d.block_schema is not None and "notify" in d.block_schema.capabilities)]
    if len(found) != 1:
        raise ConfigError(
            f"PROCORE_SYNC_ALERT_BLOCK names {reference!r}, but the Prefect server has "
            f"{'no such notification block' if not found else f'{len(found)} blocks of that name'}; create it "
            "with `procore-sync alerts set-webhook URL` (or in the UI under Blocks), or write it as "
            "<block-type-slug>/<name>.")
    assert found[0].id is not None
    return found[0].id


def install_alerts(settings: Settings) -> list[str]:
    """Create or update each alert by name (extra copies of one are deleted); returns their names.
    Without ``settings.alert_block`` nothing is created, and the log says so."""
    if not settings.alert_block:
        logger.warning("PROCORE_SYNC_ALERT_BLOCK is not set: no alerts are created (existing ones are left "
                       "as they are); see docs/alerts.md")
        return []
    with get_client(sync_client=True) as client:
        block_id = notification_block_id(client, settings.alert_block)
        for alert in alerts(settings):
            upsert(client, alert.automation(block_id))
    names = [alert.name for alert in alerts(settings)]
    logger.info("alerts through %s: %s", settings.alert_block, ", ".join(names))
    return names


SLACK_URL = r"^https://hooks\.slack(-gov)?\.com/services/"
DEFAULT_BLOCK = "procore-sync-alerts"


def save_webhook_block(url: str, *, slack: bool, name: str = DEFAULT_BLOCK) -> str:
    """A notification block for the alerts, saved (replaced) under ``name``; returns the value for
    PROCORE_SYNC_ALERT_BLOCK.

    ``slack``: a Slack incoming webhook gets Prefect's ``SlackWebhook``; any other URL a
    Slack-compatible body (``{"text": ...}``, what Mattermost, Rocket.Chat and Slack's own hooks
    take). Otherwise a generic webhook: a JSON ``{"subject", "body"}`` POST. The URL is kept among
    the block's secrets (an incoming webhook's URL is its credential), not in its plain fields.
    """
    if slack and re.match(SLACK_URL, url):
        block: Block = SlackWebhook(url=SecretStr(url))
    else:
        body = {"text": "*{{subject}}*\n{{body}}"} if slack else {"subject": "{{subject}}", "body": "{{body}}"}
        block = CustomWebhookNotificationBlock(name=name, url="{{alert_url}}", json_data=body,
                                               secrets=SecretDict({"alert_url": url}))
    block.save(name, overwrite=True)
    return f"{block.get_block_type_slug()}/{name}"
