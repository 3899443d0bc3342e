"""Run entity flows from the command line, and serve the deployments.

Flows run in this process against the Prefect API in ``PREFECT_API_URL`` (a local server, or
Prefect's ephemeral one when unset). A failed flow run still yields a ``RunSummary``: the state
store has its counts and message.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect import serve

from connectors.quota import ensure_quota_limit
from connectors.state import StateStore
from deployments import runner_deployments
from flows import ENTITY_FLOWS
from procore_sync.errors import ConfigError
from procore_sync.settings import Settings
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
    if settings.quota_enabled:
        ensure_quota_limit(settings)
    return [run_one(settings, name, options or SyncOptions()) for name in entity_names(names)]


def run_one(settings: Settings, name: str, options: SyncOptions) -> RunSummary:
    _, flow = ENTITY_FLOWS[name]
    state = flow(options=options, return_state=True)
    if state.is_completed():
        return state.result()
    return failed_summary(settings, name, str(state.state_details.flow_run_id), state.message or state.name)


def failed_summary(settings: Settings, name: str, flow_run_id: str, message: str) -> RunSummary:
    """The summary of a run that raised, read back from the state store."""
    assert settings.state_path is not None
    runs = [r for r in StateStore(settings.state_path).runs(name, limit=5) if r.flow_run_id == flow_run_id]
    if not runs:
        return RunSummary(entity=name, run_id="", flow_run_id=flow_run_id, status="failed", message=message)
    run = runs[0]
    return RunSummary(
        entity=name,
        run_id=run.run_id,
        flow_run_id=flow_run_id,
        status="failed",
        api_calls=run.api_calls,
        write_calls=run.write_calls,
        cursor_before=run.cursor_before.isoformat() if run.cursor_before else None,
        cursor_after=run.cursor_after.isoformat() if run.cursor_after else None,
        message=run.message or message,
        **{k: v for k, v in run.counts.items() if k in RunSummary.model_fields},
    )


def serve_forever(settings: Settings) -> None:
    """Register every deployment with its schedule and run their flow runs until Ctrl-C."""
    serve(*runner_deployments(settings), pause_on_shutdown=False, print_starting_message=False, limit=4)
