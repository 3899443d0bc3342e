"""health-check: is every connector and every entity's endpoint ready, before go-live and after?

One table artifact with a row per check and one of four verdicts, **OK**, **Unreachable**,
**Failed authentication** or **Missing permission** (or **Failed** for anything else, such as a
missing ERP table), each with what was seen. Any row that is not OK fails the run, so a red
health check shows as a failed run in the UI and in ``retry``-style monitoring.

The checks, cheapest first: the ERP database and each entity's table are readable; the ERP
sink's database answers (the ERP file, or the PostgreSQL database of ``erp_sink_url``) and its
export folder is writable; the state belongs to these settings' Procore, company and
ERP (its pairing, ``tasks/pairing.py``); a Procore token is issued; the company is visible; the
service account has permitted projects; each entity's Procore endpoint answers a one-item read
(project-level ones in the first permitted project; lines through their contract's tool, which
is the one permission Procore checks); the quota left in Procore's window.
"""

from __future__ import annotations

import string
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel

from connectors.erp import DuckDbErpSource, ErpSource
from connectors.erp_sink import ErpSink
from connectors.sources import SourceSet, UploadSource, build_sources, close_sources
from connectors.procore import ProcoreClient
from flows import ENTITY_FLOWS, enabled
from procore_sync.errors import AuthenticationFailed, PermissionDenied, SyncError, TransientError
from connectors.state import StateStore
from procore_sync.profiles import load_settings
from procore_sync.settings import Settings
from tasks.company import check_company
from tasks.pairing import pairing_of, require
from tasks.spec import Spec

Verdict = Literal["OK", "Unreachable", "Failed authentication", "Missing permission", "Failed"]
# The health check must answer quickly: one retry, not the sync's patient six.
ATTEMPTS = 2


class Check(BaseModel):
    connector: str  # erp | erp sink | state | procore
    check: str
    status: Verdict
    detail: str


class HealthCheckFailed(Exception):
    """Raised at the end of a health check with red rows, so the flow run is Failed."""


def verdict(exc: BaseException) -> Verdict:
    if isinstance(exc, AuthenticationFailed):
        return "Failed authentication"
    if isinstance(exc, PermissionDenied):
        return "Missing permission"
    if isinstance(exc, TransientError | OSError):
        return "Unreachable"
    return "Failed"


def run_check(connector: str, name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(connector=connector, check=name, status="OK", detail=probe())
    except (SyncError, OSError) as exc:
        return Check(connector=connector, check=name, status=verdict(exc), detail=str(exc))


def erp_checks(settings: Settings) -> list[Check]:
    """Each ERP → Procore table's source answers: rows read, or the upload drop reachable."""
    sources = build_sources(settings)
    try:
        return source_checks(sources, settings) + [sink_check(settings), export_check(settings),
                                                   pairing_check(settings, sources)]
    finally:
        close_sources(sources)  # an SFTP connection, an HTTP session


def source_checks(sources: SourceSet, settings: Settings) -> list[Check]:
    tables = [table for spec, _ in ENTITY_FLOWS.values() if not spec.inbound for table in spec.erp_tables]
    default_missing = isinstance(sources.default, DuckDbErpSource) and not sources.default.path.is_file()
    checks = []
    if default_missing and any(table not in sources.by_table for table in tables):
        checks.append(Check(connector="erp", check="database", status="Unreachable",
                            detail=f"the ERP database {settings.erp_path} does not exist (PROCORE_SYNC_ERP_PATH)"))
    for table in tables:
        source = sources.of(table)
        if source is sources.default and default_missing:
            continue
        checks.append(run_check("erp", f"table {table}", lambda s=source, t=table: source_probe(s, t)))
    return checks


def sink_check(settings: Settings) -> Check:
    """The sink's database answers: which of the tables sync-all writes it holds already."""
    tables = [table for name, (spec, _) in ENTITY_FLOWS.items() if spec.inbound and enabled(name, settings)
              for table in spec.sink_tables]

    def answers() -> str:
        sink = ErpSink.open(settings)
        return (f"{len(sink.existing(tables))} of {len(tables)} tables in {sink.location}"
                " (each made by its entity's first run)")

    return run_check("erp sink", "tables", answers)


def export_check(settings: Settings) -> Check:
    export_dir = settings.export_dir

    def writable() -> str:
        export_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=export_dir):
            return f"{export_dir} is writable"

    return run_check("erp sink", "export folder", writable)


def pairing_check(settings: Settings, sources: SourceSet) -> Check:
    """Whether the state belongs to these settings' Procore, company and ERP (tasks/pairing.py);
    read only: a health check never pairs a state."""
    current = pairing_of(settings, sources)

    def paired() -> str:
        # A state file not made yet is not made by a health check; a database is always there.
        store = StateStore.open(settings) if settings.state_url or settings.state_path.exists() else None
        recorded = store.pairing() if store is not None else None
        if store is None or recorded is None:
            return f"not paired yet; the first run pairs the state with {current.describe()}"
        require(store, recorded, current)
        return f"paired with {current.describe()} ({recorded.how})"

    return run_check("state", "pairing", paired)


def upload_status(source: UploadSource, table: str) -> str:
    if source.in_use(table):
        return "a run is syncing an upload now"
    if source.drop.claimed(table):
        return "an upload left in processing/ by a run that did not finish; the next run resumes it"
    return "a new upload is waiting" if source.drop.ready(table) else "reachable, no new upload"


def source_probe(source: ErpSource, table: str) -> str:
    if isinstance(source, UploadSource):
        return f"{source.describe()}: {upload_status(source, table)}"
    return f"{len(list(source.read(table)))} rows from {source.describe()}"


def probe(client: ProcoreClient, spec: Spec, context: dict[str, Any]) -> str:
    """One small read of the entity's endpoint (``Spec.probe``); raises what Procore answered."""
    spec.probe(client, context)
    return "answers"


def entity_checks(client: ProcoreClient, settings: Settings, project_id: int | None) -> list[Check]:
    context: dict[str, Any] = {"company_id": settings.company_id, "settings": settings}
    if project_id is not None:
        context["project_id"] = project_id
    checks: dict[str, Check] = {}
    for name, (spec, _) in ENTITY_FLOWS.items():
        if not enabled(name, settings):
            continue
        needs = _placeholders(spec) - context.keys()
        parent = next((p.name for p in spec.parents if p.name in checks), None)
        if needs and "project_id" not in needs and parent is not None:
            # Lines are read per contract; Procore checks the contract's tool, checked above.
            checks[name] = checks[parent].model_copy(update={"check": f"endpoint {name}",
                                                             "detail": f"same tool as {parent}"})
        elif needs:
            checks[name] = Check(connector="procore", check=f"endpoint {name}", status="Missing permission",
                                 detail="no permitted project to read it in")
        else:
            checks[name] = run_check("procore", f"endpoint {name}", lambda spec=spec: probe(client, spec, context))
    return list(checks.values())


def _placeholders(spec: Spec) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(spec.probe_path) if field}


def procore_checks(settings: Settings) -> list[Check]:
    patient = settings.model_copy(update={"max_attempts": ATTEMPTS})
    with ProcoreClient(patient) as client:
        token = run_check("procore", "token", lambda: f"{len(client.companies())} companies visible")
        if token.status != "OK":
            return [token]
        company = run_check("procore", "company", lambda: (check_company(client, settings), "visible")[1])
        if company.status != "OK":
            return [token, company]
        projects: list[dict] = []

        def permitted() -> str:
            projects.extend(client.paginate("/rest/v1.1/projects", {"company_id": settings.company_id}))
            if not projects:
                raise PermissionDenied("the service account has no permitted project; add projects to "
                                       "its permitted list in Procore (Company Admin → App Management)")
            return f"{len(projects)} permitted projects"

        checks = [token, company, run_check("procore", "permitted projects", permitted)]
        checks += entity_checks(client, settings, int(projects[0]["id"]) if projects else None)
        checks.append(quota_check(client, settings))
    return checks


def quota_check(client: ProcoreClient, settings: Settings) -> Check:
    """Red when the window is nearly spent for more than a minute: the 10-second spike window
    running low after the checks' own burst of calls is normal and refills by itself."""
    quota = client.stats.quota
    wait_s = (quota.reset_at - datetime.now(UTC)).total_seconds() if quota.reset_at else 0.0
    low = quota.remaining is not None and quota.remaining <= settings.pacing_low_water and wait_s > 60
    reset = f", resets at {quota.reset_at:%H:%M:%S} UTC" if quota.reset_at else ""
    return Check(connector="procore", check="quota headroom", status="Failed" if low else "OK",
                 detail=f"{quota.remaining} of {quota.limit} calls left in Procore's window{reset}")


def all_checks(settings: Settings) -> list[Check]:
    return erp_checks(settings) + procore_checks(settings)


@flow(name="health-check", description=__doc__)
def health_check(profile: str | None = None) -> list[Check]:
    """Check every connector and entity endpoint; a failed run when any row is not OK."""
    checks = all_checks(load_settings(profile))
    red = [c for c in checks if c.status != "OK"]
    create_table_artifact(table=[c.model_dump() for c in checks], key="health-check",
                          description=f"health check: {len(checks) - len(red)} OK, {len(red)} not OK")
    if red:
        raise HealthCheckFailed("; ".join(f"{c.check}: {c.status} ({c.detail})" for c in red[:5]))
    return checks
