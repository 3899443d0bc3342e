"""``procore-sync demo``: the sample ERP synced into the local Procore sandbox through Prefect.

Both directions: a first sync-all carries the ERP into Procore (and brings back whatever the
field already changed there); then the field works in Procore (``field_activity``: change orders
and budget changes created, edited, voided, deleted, through Procore's API), and a second
sync-all brings that into the ERP's tables and export files while sending nothing to Procore.

Resource Planning people come, as they often do, from another system than the ERP: the demo's
"HR system" uploads the sample's ``resource_people.csv`` into a folder drop
(``<home>/drops/hr``), which the first sync takes, syncs and archives.

Everything lives under the settings' home folder (``.procore-sync/`` by default): the sample ERP,
the HR drop, the sandbox's data file, the DuckDB state, the ERP exports and the Prefect server's
database.
They persist between demos, so a second demo's first sync makes 0 write calls to Procore.
``--reset`` starts from scratch.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import requests
from prefect.context import refresh_global_settings_context
from pydantic import SecretStr
from pydantic_core import to_jsonable_python

from app.prefect_server import PrefectServer, die_with_parent, free_port, port_is_free
from demo import sample_erp
from procore_sync.settings import ProcoreEnvironment, Settings
from procore_sync.source_config import FolderTemplatesConfig
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread

if TYPE_CHECKING:
    from demo.field_activity import FieldActivity
    from tasks.report import RunSummary


@dataclass
class DemoOptions:
    once: bool = False
    reset: bool = False
    scale: float = 1.0
    prefect_port: int = 4200
    sandbox_port: int = 8765


# The local sandbox is ours: the demo gives it (and the shared budget) ten times Procore's default
# quota, so a first sync of the whole sample company takes a minute, not a quarter of an hour.
DEMO_QUOTA = {"PROCORE_SYNC_QUOTA_PER_HOUR": "36000", "PROCORE_SYNC_QUOTA_SPIKE_PER_10S": "250"}
# The webhook path while the demo serves: the hook's secret, and the sandbox's application id for
# procore-sync's own writes (their events are echoes).
DEMO_WEBHOOKS = {"PROCORE_SYNC_WEBHOOK_SECRET": "demo-webhook-secret",
                 "PROCORE_SYNC_WEBHOOK_APPLICATION_IDS": f'["{SandboxConfig().application_id}"]'}
# While the demo serves, the field edits a change order this often (the first one at once).
FIELD_EDIT_S = 60.0
# How long the serve loop has, after Ctrl-C, to cancel its runs and end before it is killed.
SERVE_STOP_S = 60.0


def with_demo_setting(settings: Settings, **values: object) -> Settings:
    """A setting the demo decides as it goes (the HR drop, the sandbox's URL, the receiver's):
    into the environment, which the flow runs it serves read in their own processes, and into
    the demo's one Settings, which this process passes down. model_copy does not validate: each
    value must already be of its field's type (a source as its config model, not a dict)."""
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(to_jsonable_python(value))
        os.environ[f"PROCORE_SYNC_{name.upper()}"] = text
    return settings.model_copy(update=values)


def prepare(settings: Settings, options: DemoOptions) -> tuple[Settings, Path | None]:
    """The sample ERP (once), and the HR drop the demo's Resource Planning people come from:
    the settings with that drop as their source, and the drop; None where the settings name
    sources of their own, which win."""
    if options.reset and settings.home.exists():
        shutil.rmtree(settings.home)
    fresh = not settings.erp_path.exists()
    if fresh:
        sample_erp.generate(settings.erp_path.parent, scale=options.scale)
    if settings.sources:
        return settings, None
    drop = (settings.home / "drops" / "hr").resolve()
    if fresh:
        upload_from_hr(settings, drop)
    people = FolderTemplatesConfig(kind="folder", folder=drop)
    return with_demo_setting(settings, sources={"resource_people": people}), drop


def upload_from_hr(settings: Settings, drop: Path) -> None:
    """The HR system's upload of the sample's people, as an uploader does it: file, then marker."""
    drop.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(settings.erp_path.parent / "templates" / "resource_people.csv", drop / "resource_people.csv")
    (drop / "resource_people.csv.done").touch()


def start_sandbox(settings: Settings, options: DemoOptions) -> SandboxServer:
    config = SandboxConfig(
        company_id=settings.company_id,
        client_id=settings.client_id,
        client_secret=settings.client_secret_value,
        hourly_limit=settings.quota_per_hour,
        spike_limit=settings.quota_spike_per_10s,
        data_file=settings.home / "sandbox.json",
    )
    port = options.sandbox_port if port_is_free(options.sandbox_port) else free_port()
    return start_in_thread(config, port=port)


@contextmanager
def local_sandbox_if_needed(settings: Settings) -> Iterator[None]:
    """For commands run after ``demo --once``: serve the demo's sandbox data again while they
    run, when the settings point at a local sandbox that is not running."""
    if settings.environment is not ProcoreEnvironment.local or _answers(settings.local_sandbox_url):
        yield
        return
    port = int(settings.local_sandbox_url.rsplit(":", 1)[-1].strip("/"))
    demo_quota = {"quota_per_hour": int(DEMO_QUOTA["PROCORE_SYNC_QUOTA_PER_HOUR"]),
                  "quota_spike_per_10s": int(DEMO_QUOTA["PROCORE_SYNC_QUOTA_SPIKE_PER_10S"])}
    with start_sandbox(settings.model_copy(update=demo_quota), DemoOptions(sandbox_port=port)):
        yield


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


def flush_run_logs() -> None:
    """Send the buffered flow-run logs before the server they go to is stopped."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)


def work_in_the_field(settings: Settings) -> "FieldActivity":
    """What the field does in Procore between two syncs, through Procore's API."""
    from connectors.procore import ProcoreClient
    from demo.field_activity import simulate_field_activity

    with ProcoreClient(settings) as client:
        return simulate_field_activity(client, settings.company_id, seed=7)


@contextmanager
def stopping_in_order(server: PrefectServer, settings: Settings, say: Callable[[str], None]) -> Iterator[None]:
    """The demo's end (Ctrl-C, or ``--once`` done), before the Prefect server and the sandbox
    stop: the quota slots this process still holds go back to the server that lends them while
    it answers (a spike window after their last call at the latest; once the server is gone,
    each release would retry against it for a minute). From then on a second Ctrl-C forces the
    end: the server killed, this process gone at once. The caller restores Ctrl-C's handler once
    everything has stopped."""
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: force_stop(server))
        say("Stopping the demo (Ctrl-C again to force it).")
        give_back_quota(settings)


def give_back_quota(settings: Settings) -> None:
    from connectors.quota import quota_gate

    if (gate := quota_gate(settings)) is not None:
        gate.spike.drain()


def force_stop(server: PrefectServer) -> NoReturn:
    """A second Ctrl-C: the server killed, this process ended without its cleanup (whatever it
    held on the server goes with it, or with its leases' expiry on a server it did not start)."""
    server.kill()
    sys.stderr.flush()
    os._exit(130)


@contextmanager
def webhooks_in_the_demo(settings: Settings, say: Callable[[str], None]) -> Iterator[Settings]:
    """The webhook path, live: the receiver runs in this process, procore-sync's hook in the
    sandbox points at it, and the field edits a change order every ``FIELD_EDIT_S``; each edit
    reaches the ERP seconds later through a targeted run (tag ``webhook``), not the schedule.
    Yields the settings with the receiver's URL as the hook's."""
    from connectors.procore import ProcoreClient
    from connectors.procore_webhooks import WebhooksApi
    from connectors.state import StateStore
    from app.receiver import PATH, Dispatcher, receiver_app
    from sandbox.server import run_in_thread
    from flows import configured_resources
    from tasks.webhooks import install

    store = StateStore.open(settings)
    dispatcher, stop = Dispatcher(settings, store), threading.Event()
    server, thread, url = run_in_thread(receiver_app(settings, store, dispatcher.wake), "webhook-receiver")
    settings = with_demo_setting(settings, webhook_url=url + PATH)
    with ProcoreClient(settings) as client:
        install(WebhooksApi(client, settings.company_id), settings, configured_resources(settings))
    threading.Thread(target=dispatcher.run, args=(stop,), name="webhook dispatcher", daemon=True).start()
    threading.Thread(target=edit_in_the_field, args=(settings, stop), name="the field", daemon=True).start()
    say(f"Webhooks: the receiver listens on {url}{PATH}; the field edits a commitment change order every "
        f"{FIELD_EDIT_S:g} s, and a run tagged 'webhook' brings it into the ERP within seconds "
        f"(`procore-sync webhooks events` lists what each event started).")
    try:
        yield settings
    finally:
        stop.set()
        dispatcher.wake()
        server.should_exit = True
        thread.join(timeout=5)


def edit_in_the_field(settings: Settings, stop: threading.Event) -> None:
    """A person in Procore's web UI (the sandbox's field client) retitling a change order."""
    from connectors.procore import ProcoreClient
    from connectors.state import StateStore

    field = SandboxConfig().other_clients[0]
    as_field = settings.model_copy(update={"client_id": field.client_id, "client_secret": SecretStr(field.client_secret)})
    projects = [s.procore_id for s in StateStore.open(settings).record_states("projects").values() if s.procore_id]
    edits = 0
    while not stop.wait(FIELD_EDIT_S if edits else 5.0):
        try:
            with ProcoreClient(as_field) as client:
                for project_id in projects:
                    path = f"/rest/v1.0/projects/{project_id}/commitment_change_orders"
                    if listed := client.get(path):
                        edits += 1
                        title = f"Edited in the field ({edits})"
                        client.request("PATCH", f"{path}/{listed[0]['id']}", json={"change_order": {"title": title}})
                        break
        except Exception:  # noqa: BLE001 - the demo's field is a show; the sync is what is shown
            continue


def serve_until_ctrl_c() -> int:
    """``procore-sync serve`` (the settings of this process's environment) until Ctrl-C, in a
    session of its own; 0, or its exit code when it ended by itself (its error above).

    The terminal's Ctrl-C reaches every process of its foreground group: were the serve loop in
    this process, its runs' processes would be in that group too, and a run in flight would be
    interrupted wherever it was and print its traceback to the operator. Here the Ctrl-C reaches
    this process alone, which hands it to the serve loop: that cancels its runs itself
    (``app.runner.serve_forever``) and ends. A second Ctrl-C raises KeyboardInterrupt as usual."""
    return asyncio.run(_serve_apart())


async def _serve_apart() -> int:
    from app.runner import first_ctrl_c

    serving = await asyncio.create_subprocess_exec(sys.executable, "-m", "app.cli", "serve",
                                                   start_new_session=True, preexec_fn=die_with_parent)
    ended = asyncio.create_task(serving.wait())
    async with first_ctrl_c() as ctrl_c:
        await asyncio.wait({ended, ctrl_c}, return_when=asyncio.FIRST_COMPLETED)
    if ended.done():
        return ended.result()
    serving.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(ended, SERVE_STOP_S)
    except TimeoutError:
        serving.kill()
        await serving.wait()
    return 0


def run_demo(
    options: DemoOptions,
    say: Callable[[str], None],
    show: Callable[[list["RunSummary"], str], None],
) -> int:
    """Run the demo; returns the process exit code (1 when a sync run failed)."""
    for name, value in (DEMO_QUOTA | DEMO_WEBHOOKS).items():
        os.environ.setdefault(name, value)
    # The demo's one Settings; what the demo decides later is added by with_demo_setting.
    settings, hr_drop = prepare(Settings(), options)
    with ExitStack() as stack:
        if threading.current_thread() is threading.main_thread():  # Ctrl-C as it was, once all stopped
            stack.callback(signal.signal, signal.SIGINT, signal.getsignal(signal.SIGINT))
        # A demo that does not stop says where it is: SIGUSR1 prints every thread's stack to stderr.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        stack.callback(faulthandler.unregister, signal.SIGUSR1)
        sandbox = stack.enter_context(start_sandbox(settings, options))
        server = stack.enter_context(PrefectServer(settings.home / "prefect", port=options.prefect_port))
        # Flow runs in the served subprocesses read both from the environment. This process's
        # Prefect read the environment when it was first imported (the sample ERP's columns come
        # from the entity registry), so it reads it again: for the rest of the process, its exit
        # too, where the quota slots it holds go back to this server.
        settings = with_demo_setting(settings, local_sandbox_url=sandbox.url)
        os.environ["PREFECT_API_URL"] = server.api_url
        refresh_global_settings_context()
        stack.enter_context(stopping_in_order(server, settings, say))
        say(f"Prefect UI: {server.ui_url}   Procore sandbox: {sandbox.url}   ERP: {settings.erp_path}")
        if hr_drop is not None:
            say(f"Resource Planning people come from the HR system's uploads in {hr_drop} "
                "(put a new resource_people.csv there, then an empty resource_people.csv.done)")
        from app.runner import register_deployments, run_entities

        summaries = run_entities(settings)
        show(summaries, server.ui_url)
        say(f"Field activity in Procore: {work_in_the_field(settings).describe()}")
        after_the_field = run_entities(settings)
        show(after_the_field, server.ui_url)
        summaries += after_the_field
        flush_run_logs()
        if options.once:
            say(f"{register_deployments(settings)} deployments registered (not served: --once).")
        else:
            settings = stack.enter_context(webhooks_in_the_demo(settings, say))
            say(f"Serving the deployments on their schedules; open {server.ui_url} (Ctrl-C to stop).")
            if serve_until_ctrl_c():
                return 1
        return 1 if any(s.status == "failed" for s in summaries) else 0
