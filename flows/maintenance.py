"""Maintenance flows: what an operator starts from the Prefect UI when records or runs need attention.

``resync-failed`` picks the records that are failed or blocked in the sync state, filtered by
entity, project, message text, key list and the time of their last attempt, and runs each
entity's flow for exactly those keys (a targeted resync: one record is the same flow with one
key). It is a dry run unless told otherwise: the first run shows the selection as a table, so the
operator sees what a real run would touch before it touches anything.

``retry-failed-runs`` sends every Failed or Crashed procore-sync deployment run since a time back
to Scheduled, keeping its id and parameters, unless a later run of the same deployment completed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect import flow, get_client
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Scheduled
from pydantic import BaseModel, ConfigDict, Field

from connectors import paging
from connectors.paging import Page
from connectors.sources import build_sources
from connectors.state import RecordState, StateStore
from flows import ENTITY_FLOWS, enabled, run_inside
from procore_sync.errors import ConfigError
from procore_sync.profiles import load_settings, profile_tag
from procore_sync.settings import Settings
from tasks.report import RunSummary, publish_overview
from tasks.spec import SyncOptions

NEEDS_ATTENTION = ("failed", "blocked")
PAGE = 200


class ResyncFailedOptions(BaseModel):
    """The run form of ``resync-failed``; every filter narrows the selection."""

    model_config = ConfigDict(extra="forbid")

    entities: list[str] = Field(default_factory=list, description="Only these entities (empty: every entity).")
    project: str | None = Field(default=None, description="Only records of this ERP project number.")
    message_contains: str | None = Field(
        default=None, description="Only records whose message contains this text (any case).")
    erp_keys: list[str] = Field(default_factory=list, description="Only these record keys.")
    since: datetime | None = Field(default=None, description="Only records whose last attempt was at or after this.")
    dry_run: bool = Field(default=True, description="Show the selection only; resync nothing. Untick to resync.")
    recreate_deleted: bool = Field(
        default=False, description="Create again the selected records that were deleted in Procore "
        "(message 'deleted in Procore'); without it they fail again.")


class Selected(BaseModel):
    entity: str
    erp_key: str
    status: str
    attempts: int
    message: str | None
    last_attempt: datetime


def select(options: ResyncFailedOptions, settings: Settings) -> list[Selected]:
    """The failed and blocked records the options name, entity by entity, in key order."""
    unknown = [name for name in options.entities if name not in ENTITY_FLOWS]
    if unknown:
        raise ConfigError(f"unknown entity {', '.join(unknown)}; known: {', '.join(ENTITY_FLOWS)}")
    store = StateStore.open(settings)
    names = options.entities or [name for name in ENTITY_FLOWS if enabled(name, settings)]
    chosen: list[Selected] = []
    for name in names:
        states = {k: s for k, s in store.record_states(name).items() if s.status in NEEDS_ATTENTION}
        in_project = projects_of(name, states, settings) if options.project else {}
        chosen += [
            Selected(entity=name, erp_key=key, status=s.status, attempts=s.attempts, message=s.message,
                     last_attempt=s.updated_at)
            for key, s in sorted(states.items())
            if _wanted(options, key, s, in_project.get(key))
        ]
    return chosen


def projects_of(name: str, states: dict[str, RecordState], settings: Settings) -> dict[str, str | None]:
    """Each record's ERP project: its row's ``project_number``, else the first part of its key
    (``P-1001|02-300``, and the Procore → ERP records' ``P-1001|<Procore id>``)."""
    spec = ENTITY_FLOWS[name][0]
    rows: dict[str, dict] = {}
    if not spec.inbound:  # a Procore → ERP record has no source row; its key names its project
        source = build_sources(settings)
        rows = {str(r.data.get(spec.key_field, "")).strip(): r.data for r in source.read(spec.erp_table)}
    return {key: (rows.get(key) or {}).get("project_number") or (key.split("|")[0] if "|" in key else None)
            for key in states}


def _wanted(options: ResyncFailedOptions, key: str, state: RecordState, project: str | None) -> bool:
    text = (options.message_contains or "").casefold()
    return (
        (not options.erp_keys or key in options.erp_keys)
        and (not text or text in (state.message or "").casefold())
        and (options.since is None or state.updated_at >= options.since)
        and (options.project is None or project == options.project)
    )


def publish_selection(chosen: list[Selected], dry_run: bool) -> None:
    rows = [row.model_dump(mode="json") for row in chosen] or [
        {"entity": "", "erp_key": "", "status": "", "attempts": 0, "message": "no record matches", "last_attempt": ""}]
    verb = "would resync" if dry_run else "resyncs"
    create_table_artifact(table=rows, key="resync-failed-selection",
                          description=f"resync-failed {verb} {len(chosen)} records")


@flow(name="resync-failed", description=__doc__)
def resync_failed(options: ResyncFailedOptions = ResyncFailedOptions(),
                  profile: str | None = None) -> list[RunSummary]:
    """Resync the failed and blocked records the form selects (a dry run by default)."""
    settings = load_settings(profile)
    chosen = select(options, settings)
    publish_selection(chosen, options.dry_run)
    if options.dry_run:
        return []
    keys: dict[str, list[str]] = {}
    for row in chosen:
        keys.setdefault(row.entity, []).append(row.erp_key)
    summaries = [
        run_inside(name, SyncOptions(erp_keys=entity_keys, recreate_deleted=options.recreate_deleted), settings)
        for name, entity_keys in keys.items()  # in dependency order: ENTITY_FLOWS is
    ]
    publish_overview(summaries)
    return summaries


# --- retry-failed-runs ------------------------------------------------------------------------


class RetryFailedRunsOptions(BaseModel):
    """The run form of ``retry-failed-runs``."""

    model_config = ConfigDict(extra="forbid")

    since_hours: float = Field(default=24, gt=0, description="Retry runs that started at most this many hours ago.")
    dry_run: bool = Field(default=False, description="List the runs it would retry; retry none.")


class RetriedRun(BaseModel):
    flow_run_id: str
    name: str
    deployment: str
    state: str
    started: datetime | None
    retried: bool
    reason: str


def failed_deployment_runs(client: SyncPrefectClient, since: datetime,
                           profile: str | None = None) -> list[RetriedRun]:
    """procore-sync's deployment runs that ended Failed or Crashed since ``since``, oldest first,
    except those whose deployment has completed a run started after them; with a profile, only
    that company's (its deployments carry its tag)."""
    tags = ["procore-sync", *([profile_tag(profile)] if profile else [])]
    tagged = FlowRunFilter(tags=FlowRunFilterTags(all_=tags),
                           start_time=FlowRunFilterStartTime(after_=since))

    def page(offset: int) -> Page:  # 3.8's client needs a limit
        return Page(client.read_flow_runs(flow_run_filter=tagged, sort=FlowRunSort.START_TIME_ASC,
                                          limit=PAGE, offset=offset))

    runs: list[FlowRun] = [r for r in paging.offsets(page) if r.deployment_id is not None]
    names = {i: client.read_deployment(i).name for i in {r.deployment_id for r in runs}}
    completed = {}
    for run in runs:
        if run.state_type == StateType.COMPLETED and run.start_time is not None:
            completed[run.deployment_id] = max(completed.get(run.deployment_id, run.start_time), run.start_time)
    chosen = []
    for run in runs:
        if run.state_type not in (StateType.FAILED, StateType.CRASHED):
            continue
        later = completed.get(run.deployment_id)
        superseded = later is not None and run.start_time is not None and later > run.start_time
        chosen.append(RetriedRun(
            flow_run_id=str(run.id), name=run.name, deployment=names.get(run.deployment_id, str(run.deployment_id)),
            state=run.state_name or str(run.state_type), started=run.start_time, retried=not superseded,
            reason="a later run of its deployment completed" if superseded else "failed or crashed",
        ))
    return chosen


@flow(name="retry-failed-runs")
def retry_failed_runs(options: RetryFailedRunsOptions = RetryFailedRunsOptions(),
                      profile: str | None = None) -> list[RetriedRun]:
    """Re-run every Failed or Crashed procore-sync deployment run since a time, with the same run
    ids and parameters (Prefect's own retry: the run goes back to Scheduled and the serve process
    or worker runs it again), skipping runs a later run of the same deployment has made good."""
    since = datetime.now(UTC) - timedelta(hours=options.since_hours)
    with get_client(sync_client=True) as client:
        runs = failed_deployment_runs(client, since, profile)
        if not options.dry_run:
            for run in runs:
                if run.retried:
                    client.set_flow_run_state(UUID(run.flow_run_id), Scheduled(name="AwaitingRetry"), force=True)
    retried = [r if not options.dry_run else r.model_copy(update={"retried": False}) for r in runs]
    rows = [r.model_dump(mode="json") for r in retried] or [{"flow_run_id": "", "name": "", "deployment": "",
                                                             "state": "", "started": "", "retried": False,
                                                             "reason": "no failed or crashed run"}]
    count = sum(r.retried for r in retried)
    create_table_artifact(table=rows, key="retry-failed-runs",
                          description=f"retry-failed-runs: {count} of {len(runs)} failed runs sent back to Scheduled")
    return retried
