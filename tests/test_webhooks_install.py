"""``procore-sync webhooks install | uninstall | health-check`` against a real sandbox over HTTP.

The sandbox runs on a real port with a manual clock; a local receiver records the deliveries.
Commands run through the CLI as an operator would, with the settings in the environment.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from procore_sync.settings import Settings
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from sandbox.webhooks import Webhooks
from flows import configured_resources
from tasks.webhooks import wanted_triggers
from tests.webhook_support import Caller, Receiver, receiving

SECRET = "whsec-0123456789-abcdef"
runner = CliRunner()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[SandboxServer]:
    config = SandboxConfig(webhook_duplicate_rate=0.0, webhook_reorder_window=1, token_ttl_s=86_400)
    with start_in_thread(config, clock) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, server: SandboxServer, receiver: Receiver, tmp_path: Path) -> Settings:
    for name, value in {
        "PROCORE_SYNC_LOCAL_SANDBOX_URL": server.url, "PROCORE_SYNC_HOME": str(tmp_path),
        "PROCORE_SYNC_WEBHOOK_URL": receiver.url, "PROCORE_SYNC_WEBHOOK_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def sandbox_hooks(server: SandboxServer) -> Webhooks:
    webhooks: Webhooks = server.app.state.sandbox.webhooks
    return webhooks


def stored_triggers(server: SandboxServer) -> list[tuple[str, str]]:
    return sorted((t.resource_name, t.event_type) for t in sandbox_hooks(server).triggers.values())


def health_check() -> tuple[int, dict]:
    result = runner.invoke(app, ["webhooks", "health-check", "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_the_configured_entities_name_their_resources(settings: Settings) -> None:
    resources = configured_resources(settings)
    assert {"Company Vendors", "Projects", "Budget Line Items", "Change Order Packages", "Budget Changes",
            "Work Order Contract Line Items", "Direct Cost Line Items"} <= set(resources)
    assert "Budget Modifications" not in resources  # the budget tool the company does not use
    assert ("Projects", "delete") not in {(k.resource_name, k.event_type) for k in wanted_triggers(resources)}


def test_install_twice_makes_one_hook_and_no_doubled_triggers(settings: Settings, server: SandboxServer) -> None:
    first = runner.invoke(app, ["webhooks", "install"])
    second = runner.invoke(app, ["webhooks", "install"])

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    [hook] = sandbox_hooks(server).hooks.values()
    assert (hook.namespace, hook.destination_url) == ("procore-sync", settings.webhook_url)
    assert hook.destination_headers == {"Authorization": f"Bearer {SECRET}"}
    wanted = sorted((k.resource_name, k.event_type) for k in wanted_triggers(configured_resources(settings)))
    assert stored_triggers(server) == wanted
    assert max(Counter(stored_triggers(server)).values()) == 1
    assert f"{len(wanted)} added" in first.stdout and f"0 added, {len(wanted)} already there" in second.stdout
    assert SECRET not in first.output + second.output


def test_install_completes_a_partial_install_and_puts_the_new_secret(
    settings: Settings, server: SandboxServer, receiver: Receiver, clock: ManualClock
) -> None:
    api = Caller(server)
    old = {"api_version": "v2", "namespace": "procore-sync", "destination_url": receiver.url,
           "destination_headers": {"Authorization": "Bearer an-old-secret"}}
    hook_id = api.call("POST", "/rest/v1.0/webhooks/hooks", body={"company_id": 1, "hook": old}, status=201)["id"]
    trigger = {"company_id": 1, "api_version": "v2", "trigger": {"resource_name": "Company Vendors", "event_type": "create"}}
    api.call("POST", f"/rest/v1.0/webhooks/hooks/{hook_id}/triggers", body=trigger, status=201)

    result = runner.invoke(app, ["webhooks", "install"])
    api.call("POST", "/rest/v1.0/vendors", body={"company_id": 1, "vendor": {"name": "Acme"}}, status=201)
    sandbox_hooks(server).settle()

    assert result.exit_code == 0, result.output
    assert f"hook {hook_id} found, secret updated" in result.stdout
    assert len(sandbox_hooks(server).hooks) == 1 and max(Counter(stored_triggers(server)).values()) == 1
    assert [arrival.headers["Authorization"] for arrival in receiver.arrivals] == [f"Bearer {SECRET}"]


def test_uninstall_removes_the_hook_and_its_triggers(settings: Settings, server: SandboxServer) -> None:
    assert runner.invoke(app, ["webhooks", "install"]).exit_code == 0
    removed = runner.invoke(app, ["webhooks", "uninstall"])
    again = runner.invoke(app, ["webhooks", "uninstall"])

    assert removed.exit_code == 0 and "removed" in removed.stdout
    assert sandbox_hooks(server).hooks == {} and sandbox_hooks(server).triggers == {}
    assert again.exit_code == 0 and "no hook of procore-sync" in again.stdout


def test_health_check_is_red_while_deliveries_fail_or_were_discarded(
    settings: Settings, server: SandboxServer, receiver: Receiver, clock: ManualClock
) -> None:
    not_installed = health_check()
    assert runner.invoke(app, ["webhooks", "install"]).exit_code == 0
    api = Caller(server)
    receiver.statuses = [500]
    api.call("POST", "/rest/v1.0/vendors", body={"company_id": 1, "vendor": {"name": "Acme"}}, status=201)
    sandbox_hooks(server).settle()
    failing = health_check()
    clock.advance(1)  # the retry after the first backoff succeeds
    sandbox_hooks(server).settle()
    recovered = health_check()
    receiver.statuses = [500] * 100
    api.call("POST", "/rest/v1.0/vendors", body={"company_id": 1, "vendor": {"name": "Beta"}}, status=201)
    for _ in range(13):
        clock.advance(3600)
        sandbox_hooks(server).settle()
    discarded = health_check()

    assert not_installed[0] == 1 and not_installed[1]["status"] == "not installed"
    assert failing[0] == 1 and failing[1]["status"] == "failing" and failing[1]["failing"] == 1
    assert failing[1]["last_error"].endswith("HTTP 500")
    assert recovered[0] == 0 and recovered[1]["status"] == "OK"
    assert recovered[1]["outcomes"] == {"ok": 1, "retried": 1}
    assert discarded[0] == 1 and discarded[1]["status"] == "discarded" and discarded[1]["discarded"] == 1
