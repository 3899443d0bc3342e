"""Run entity flows from the command line, and serve the deployments.

Flows run in this process against the Prefect API in ``PREFECT_API_URL`` (a local server, or
Prefect's ephemeral one when unset). A failed flow run still yields a ``RunSummary``: the state
store has its counts and message.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prefect.runner import Runner
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from connectors.quota import ensure_quota_limit
from deployments import runner_deployments
from deployments.alerts import install_alerts
from deployments.crash_detection import HEARTBEAT_S, install_crash_detection
from connectors.sources import build_sources
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from connectors.erp_sink import ErpSink
from flows import ENTITY_FLOWS, enabled, profile_parameter
from flows.sync_all import sync_all
from prefect.states import State
from procore_sync.errors import ConfigError
from procore_sync.settings import Settings
from tasks.company import check_company
from tasks.prefect_run import summary_of
from tasks.reconcile import Reconciliation, reconcile_entity
from tasks.report import RunSummary
from tasks.spec import SyncOptions


def entity_names(requested: Iterable[str] | None = None) -> list[str]:
    names = list(requested or ENTITY_FLOWS)
    unknown = [name for name in names if name not in ENTITY_FLOWS]
    if unknown:
        raise ConfigError(f"unknown entity {', '.join(unknown)}; known: {', '.join(ENTITY_FLOWS)}")
    return names


def run_entities(settings: Settings, names: Iterable[str] | None = None,
                 options: SyncOptions | None = None) -> list[RunSummary]:
    """The named entities one after the other, or (no names) every entity through sync-all."""
    if settings.quota_enabled:
        ensure_quota_limit(settings)
    options = options or SyncOptions()
    if names is None:
        state = sync_all(options=options, return_state=True, **profile_parameter(settings))
        return state.result() if state.is_completed() else [failed_all(state)]
    return [run_one(settings, name, options) for name in entity_names(names)]


def upload_file(settings: Settings, entity: str, file: Path, *, dry_run: bool = False) -> RunSummary:
    """One run of ``entity`` that reads its table from ``file`` alone (a one-time upload): every
    row, through the usual map, plan, load and report. Other tables keep their sources."""
    [name] = entity_names([entity])
    spec = ENTITY_FLOWS[name][0]
    if spec.inbound:
        raise ConfigError(f"{name} comes from Procore; only ERP → Procore entities take an upload")
    if file.suffix.lower() != ".csv":
        raise ConfigError(f"{file} is not a .csv file; `procore-sync templates` writes the template for {name}")
    return run_entities(settings, [name], SyncOptions(upload_file=str(file.resolve()), dry_run=dry_run))[0]


def failed_all(state: State) -> RunSummary:
    return RunSummary(entity="sync-all", run_id="", flow_run_id=str(state.state_details.flow_run_id),
                      status="failed", message=state.message)


def run_one(settings: Settings, name: str, options: SyncOptions) -> RunSummary:
    _, flow = ENTITY_FLOWS[name]
    return summary_of(flow(options=options, return_state=True, **profile_parameter(settings)), name, settings)


def register_deployments(settings: Settings, *more: Settings) -> int:
    """Register every deployment of each company (settings) with its schedule and form, without
    serving them (what ``demo --once`` leaves for the UI; a later ``demo`` or a worker runs them)."""
    deployments = runner_deployments(settings, *more)
    for deployment in deployments:
        deployment.apply()
    install_automations(settings)
    return len(deployments)


def install_automations(settings: Settings) -> list[str]:
    """What every way of making the deployments installs beside them: the crash detection (a run
    whose process is gone ends Crashed) and the alerts the settings ask for; returns the alerts'
    names (none without ``PROCORE_SYNC_ALERT_BLOCK``)."""
    install_crash_detection()
    return install_alerts(settings)


def serve_forever(settings: Settings, *more: Settings, flows: Collection[str] | None = None) -> None:
    """Register every deployment of each company (settings) with its schedule and run their flow
    runs in this one process until Ctrl-C: each run makes its settings from its ``profile``.
    ``flows``: only the deployments of these flows (by flow name).

    Ctrl-C stops the serve loop through the runner's own stop (``Runner.astop``: no new run, the
    runs in flight cancelled, its loops' cancel scope cancelled), then returns. Prefect's ``serve``
    left it to asyncio's Ctrl-C, a cancel of the loop's main task thrown in wherever it waits,
    and beside a busy test suite that cancel was lost now and then (the loop idled on, the demo
    never stopped: tests/test_demo.py). A second Ctrl-C raises KeyboardInterrupt as usual."""
    deployments = runner_deployments(settings, *more, flows=flows)  # refuses an unknown flow: nothing installed yet
    install_automations(settings)
    runner = Runner(pause_on_shutdown=False, limit=4)
    for deployment in deployments:
        runner.add_deployment(deployment)
    # The runs' processes get this process's settings: they beat as the automation expects.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: HEARTBEAT_S}):
        asyncio.run(_serve_until_ctrl_c(runner))


async def _serve_until_ctrl_c(runner: Runner) -> None:
    serving = asyncio.create_task(runner.start())
    async with first_ctrl_c() as ctrl_c:
        await asyncio.wait({serving, ctrl_c}, return_when=asyncio.FIRST_COMPLETED)
        while not serving.done() and not runner.started:  # Ctrl-C while it was starting
            await asyncio.sleep(0.1)
        if not serving.done():
            await runner.astop()
        await serving


@asynccontextmanager
async def first_ctrl_c() -> AsyncIterator[asyncio.Task[Any]]:
    """A task that ends at the first Ctrl-C; the next one is Python's KeyboardInterrupt.

    asyncio's signal handler: the signal wakes the loop through a pipe, whichever of the
    process's threads the kernel gave it. Python's own handler runs in the main thread, between
    bytecodes, and a main thread that only waits may not run it for as long as it waits (the
    demo, waiting in plain Python for its serve process beside the suite, never saw a Ctrl-C).
    Signals reach the main thread alone: in another, the task never ends."""
    loop, interrupted = asyncio.get_running_loop(), asyncio.Event()

    def on_ctrl_c() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        interrupted.set()

    if threading.current_thread() is threading.main_thread():
        loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
    waiting = asyncio.create_task(interrupted.wait())
    try:
        yield waiting
    finally:
        waiting.cancel()
        loop.remove_signal_handler(signal.SIGINT)  # none left to remove: False


def reconcile_entities(settings: Settings, names: Iterable[str] | None = None) -> list[Reconciliation]:
    """Compare ERP and Procore for each entity (without names: every entity sync-all runs).
    Reads only; paced by Procore's headers."""
    store, source = StateStore.open(settings), build_sources(settings)
    sink = ErpSink.open(settings)
    chosen = entity_names(names) if names else [n for n in ENTITY_FLOWS if enabled(n, settings)]
    results = []
    with ProcoreClient(settings) as client:
        check_company(client, settings)
        for name in chosen:
            context: dict[str, Any] = {"company_id": settings.company_id, "settings": settings}
            results.append(reconcile_entity(ENTITY_FLOWS[name][0], client, store, source, sink, context))
    return results
