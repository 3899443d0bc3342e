"""Alerts: real automations on the real Prefect server, sending through a real notification block
to a local HTTP receiver that records what arrived (``deployments/alerts.py``).

The automations live for this module only (the session's server is shared with the other
modules of the worker, whose failing runs must not alert here): installed, twice, at its start
and deleted at its end. The server's triggers and actions services run in its ephemeral mode;
messages arrive within seconds, so each wait polls with a bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
import requests
from prefect import get_client
from prefect.states import Pending, Running, Scheduled
from typer.testing import CliRunner

from connectors.state import StateStore
from deployments.alerts import (
    FAILED,
    HEALTH,
    QUOTA,
    WEBHOOKS,
    alerts,
    install_alerts,
    notification_block_id,
    save_webhook_block,
)
from flows.entities import sync_vendors
from flows.health import health_check
from app.cli import _webhooks_api, app
from procore_sync.settings import Settings
from sandbox.server import SandboxServer
from tasks.run import utc_now
from tasks.spec import SyncOptions
from flows import configured_resources
from tasks.webhooks import WebhookHealth, health, tell_prefect
from tests.conftest import SampleErp, settings_env
from tests.support import wait_for
from tests.webhook_support import Receiver, receiving

pytestmark = pytest.mark.usefixtures("prefect_api")

QUOTA_WAIT_S = "10"  # Prefect's least for a proactive trigger


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def installed(prefect_api: str, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The alerts installed twice through a generic webhook block; their names."""
    block = save_webhook_block(receiver.url, slack=False, name="alerts-under-test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROCORE_SYNC_ALERT_BLOCK", block)
        patch.setenv("PROCORE_SYNC_ALERT_QUOTA_WAIT_S", QUOTA_WAIT_S)
        patch.setenv("PROCORE_SYNC_HOME", str(tmp_path_factory.mktemp("alerts-home")))
        install_alerts(Settings())
        install_alerts(Settings())
        # The server loads new automations a moment later (PostgreSQL's NOTIFY), in the order
        # they were made: once the last one answers, the others listen too. A probe sent before
        # it listens is never matched (a busy machine delays the load), so each try sends a new one.
        probe_until_listening(receiver)
        yield block
    with get_client(sync_client=True) as client:
        for alert in alerts(Settings()):
            for automation in client.read_automations_by_name(alert.name):
                client.delete_automation(automation.id)


@pytest.fixture
def alerted(installed: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PROCORE_SYNC_ALERT_BLOCK", installed)
    monkeypatch.setenv("PROCORE_SYNC_ALERT_QUOTA_WAIT_S", QUOTA_WAIT_S)
    return installed


def block_id(client: Any, reference: str) -> str:
    return str(notification_block_id(client, reference))


def messages_about(receiver: Receiver, run_id: UUID | str) -> list[dict[str, Any]]:
    return [m for m in receiver.events() if str(run_id) in m.get("body", "")]


def probe_until_listening(receiver: Receiver, tries: int = 24) -> None:
    """A red webhooks health event, again every 5 s, until its alert arrives."""
    def answered() -> list[dict[str, Any]] | None:
        return [m for m in receiver.events() if "probe →" in m.get("body", "")] or None

    for attempt in range(tries):
        tell_prefect(WebhookHealth(status="failing", namespace="probe", destination_url="https://x"))
        try:
            wait_for(answered, "the alerts to listen", 5)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def only_message(receiver: Receiver, run_id: UUID | str, settle_s: float = 3) -> dict[str, Any]:
    """The one message about the run, after a bounded look for a second one."""
    first = wait_for(lambda: messages_about(receiver, run_id) or None, f"an alert about run {run_id}")
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and len(messages_about(receiver, run_id)) == 1:
        time.sleep(0.25)
    assert messages_about(receiver, run_id) == first, messages_about(receiver, run_id)
    return first[0]


def test_installing_twice_leaves_one_automation_per_alert(alerted: str) -> None:
    names = [alert.name for alert in alerts(Settings())]
    assert names == [FAILED, QUOTA, HEALTH, WEBHOOKS]
    with get_client(sync_client=True) as client:
        assert {name: len(client.read_automations_by_name(name)) for name in names} == dict.fromkeys(names, 1)


def test_a_failed_run_sends_one_message_with_its_link_and_failed_counts(
    alerted: str, receiver: Receiver, sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch,
    prefect_api: str,
) -> None:
    # The bad suppliers fail in mapping; then Procore answers the first batch 500, once, with no
    # retry allowed: the run stops, failed, with records counted.
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_MAX_ATTEMPTS="1")
    requests.put(f"{sandbox.url}/_sandbox/faults", timeout=10, json={"aimed": [
        {"method": "PATCH", "path": "/rest/v1.0/vendors/sync", "fault": "server_error"}]}).raise_for_status()
    state = sync_vendors(options=SyncOptions(), return_state=True)
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    [run] = StateStore(settings.state_path).runs("vendors", limit=1)
    assert run.counts["failed"] > 0

    message = only_message(receiver, run_id)
    assert message["subject"] == "procore-sync: vendors Failed"
    assert f"{prefect_api.removesuffix('/api')}/runs/flow-run/{run_id}" in message["body"]
    assert f"Records: {run.counts['failed']} failed, {run.counts['blocked']} blocked, " in message["body"]
    assert "ServerError" in message["body"]


def test_a_run_left_awaiting_quota_past_the_setting_is_reported(alerted: str, receiver: Receiver) -> None:
    # Two vendors runs deferred as the engine defers them (``defer_flow_run``); one is picked up
    # again at once, the other waits past the setting.
    with get_client(sync_client=True) as client:
        flow_runs = [client.create_flow_run(sync_vendors, state=Pending()) for _ in range(2)]
        resumed, waiting = (run.id for run in flow_runs)
        for run_id in (resumed, waiting):
            client.set_flow_run_state(run_id, Scheduled(
                scheduled_time=utc_now() + timedelta(hours=1), name="AwaitingQuota",
                message="deferred until later: Procore's hourly quota is spent"), force=True)
        client.set_flow_run_state(resumed, Pending(), force=True)
        client.set_flow_run_state(resumed, Running(), force=True)

    message = only_message(receiver, waiting)
    assert message["subject"] == "procore-sync: vendors waiting for Procore's quota"
    assert "has waited for Procore's quota for more than 0:00:10" in message["body"]
    assert "State: AwaitingQuota: deferred until later" in message["body"]
    assert messages_about(receiver, resumed) == []


def test_a_red_health_check_sends_the_health_alert_only(
    alerted: str, receiver: Receiver, sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch,
) -> None:
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_COMPANY_ID="999")
    state = health_check(return_state=True)
    assert state.is_failed()

    message = only_message(receiver, state.state_details.flow_run_id)
    assert message["subject"] == "procore-sync: health check red"  # not also "health-check Failed"


def test_failing_webhook_deliveries_are_reported(
    alerted: str, receiver: Receiver, sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch,
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path,
                            PROCORE_SYNC_WEBHOOK_NAMESPACE="alerts-test")
    with _webhooks_api(settings) as api:
        report = health(api, settings, configured_resources(settings))
    assert not report.healthy  # never installed in this sandbox

    def webhook_messages() -> list[dict[str, Any]] | None:
        return [m for m in receiver.events() if "alerts-test →" in m.get("body", "")] or None

    [message] = wait_for(webhook_messages, "the webhooks alert")
    assert message["subject"] == "procore-sync: Procore webhook not installed"
    assert "procore-sync webhooks health-check" in message["body"]


def test_set_webhook_slack_makes_a_slack_block_or_a_slack_compatible_one(
    alerted: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    slack = runner.invoke(app, ["alerts", "set-webhook", "https://hooks.slack.com/services/T0/B0/XYZ", "--slack",
                                "--name", "slack-under-test"])
    assert slack.exit_code == 0 and "PROCORE_SYNC_ALERT_BLOCK=slack-webhook/slack-under-test" in slack.stdout

    # Any other URL with --slack: Slack's {"text": ...} body; the alerts now send through it.
    other = runner.invoke(app, ["alerts", "set-webhook", receiver.url, "--slack", "--name", "chat-under-test"])
    [block] = [line.removeprefix("PROCORE_SYNC_ALERT_BLOCK=") for line in other.stdout.splitlines()
               if line.startswith("PROCORE_SYNC_ALERT_BLOCK=")]
    monkeypatch.setenv("PROCORE_SYNC_ALERT_BLOCK", block)
    assert runner.invoke(app, ["alerts", "install"]).exit_code == 0
    with get_client(sync_client=True) as client:
        [automation] = client.read_automations_by_name(WEBHOOKS)
        assert str(automation.actions[0].block_document_id) == block_id(client, block)

    # The server applies an updated automation a moment later (PostgreSQL's NOTIFY): until then
    # an event may still go out through the old block, so each try is a new event.
    def in_slack_shape() -> list[dict[str, Any]]:
        for attempt in range(20):
            tell_prefect(WebhookHealth(status="failing", namespace=f"chat-test-{attempt}",
                                       destination_url="https://x", failing=2))
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if found := [m for m in receiver.events() if "chat-test-" in m.get("text", "")]:
                    return found
                time.sleep(0.25)
        return []

    found = in_slack_shape()
    assert found, receiver.events()[-3:]
    message = found[0]
    assert message["text"].startswith("*procore-sync: Procore webhook failing*\n")
    assert "2 deliveries failing now" in message["text"]
