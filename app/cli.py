"""The ``procore-sync`` command line.

Heavy imports (Prefect, the sandbox) happen inside the commands, so ``--help`` stays fast and a
command that does not need Prefect never starts it.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Optional
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from procore_sync.errors import SyncError
from procore_sync.redact import install_log_redaction
from procore_sync.settings import Settings

if TYPE_CHECKING:
    from connectors.procore_webhooks import WebhooksApi
    from tasks.report import RunSummary

app = typer.Typer(
    help="Keep an ERP and Procore in sync, one Prefect flow per entity.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True, soft_wrap=True)
# Tables go to stdout at a readable width even when stdout is a pipe or a log file.
out = Console(width=None if sys.stdout.isatty() else 160)


# The profile named by --profile (the app's callback, before any command); None: the base settings.
_selected: dict[str, str | None] = {"profile": None}


@app.callback()
def select_profile(
    profile: Annotated[Optional[str], typer.Option(
        "--profile", envvar="PROCORE_SYNC_PROFILE",
        help="The company (a table of the profiles file, PROCORE_SYNC_PROFILES_FILE) the command is for; "
             "unset: the environment's and .env's settings alone.")] = None,
) -> None:
    """Keep an ERP and Procore in sync, one Prefect flow per entity."""
    _selected["profile"] = profile


def _settings() -> Settings:
    """The command's settings: the selected profile's over the base, else the base; an unknown
    profile stops the command with the known ones."""
    from procore_sync.profiles import load_settings

    try:
        return load_settings(_selected["profile"])
    except SyncError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits


def _fail(exc: SyncError) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


def show_summaries(summaries: list[RunSummary], as_json: bool, ui_url: str | None = None) -> None:
    if as_json:
        for summary in summaries:
            print(summary.model_dump_json(), flush=True)
        return
    table = Table(title="procore-sync")
    columns = ["entity", "status", "created", "updated", "unchanged", "failed", "warnings", "api_calls", "write_calls", "duration_s"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("entity", "status") else "right")
    for s in summaries:
        table.add_row(*(str(getattr(s, c)) for c in columns))
    out.print(table)
    for s in summaries:
        if s.message:
            console.print(f"[yellow]{s.entity}:[/yellow] {s.message}")
        if ui_url and s.flow_run_id:
            console.print(f"{s.entity}: {ui_url}/runs/flow-run/{s.flow_run_id}")


@app.command()
def demo(
    once: Annotated[bool, typer.Option(help="Sync once and exit (for CI and scripts).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entity run on stdout.")] = False,
    reset: Annotated[bool, typer.Option(help="Start from scratch: new sample ERP, empty sandbox and state.")] = False,
    scale: Annotated[float, typer.Option(min=0.01, help="Sample ERP size (1 = 20 projects, 500 suppliers, 2,000 budget lines...).")] = 1.0,
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server and UI.")] = 4200,
    sandbox_port: Annotated[int, typer.Option(help="Port of the local Procore sandbox.")] = 8765,
    cluster: Annotated[bool, typer.Option(
        help="Two companies across two worker hosts: PostgreSQL, a Prefect server on it, a work pool "
             "(docs/deploy.md). Starts from scratch each time.")] = False,
) -> None:
    """Sync the sample ERP into the local Procore sandbox through a local Prefect server."""
    install_log_redaction()
    from app.demo import DemoOptions, run_demo

    options = DemoOptions(once=once, reset=reset, scale=scale, prefect_port=prefect_port, sandbox_port=sandbox_port)
    if cluster:
        from app.demo_cluster import run_cluster_demo as run_demo  # type: ignore[assignment]
    try:
        code = run_demo(options, say=console.print, show=lambda s, url: show_summaries(s, as_json, url))
    except SyncError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def sync(
    entity: Annotated[str, typer.Argument(help="Entity to sync, e.g. vendors; 'all' for every entity.")],
    full_resync: Annotated[bool, typer.Option(help="Ignore the last synchronisation date.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Plan only; write nothing.")] = False,
    key: Annotated[Optional[list[str]], typer.Option(help="Sync only this ERP key (repeatable).")] = None,
    project: Annotated[Optional[list[str]], typer.Option(
        help="Sync only this ERP project number's records, whatever their last sync (repeatable).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, max=1000, help="Records per sync call.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entity run on stdout.")] = False,
) -> None:
    """Run one entity's sync flow now, in this process."""
    install_log_redaction()
    from app.runner import run_entities
    from tasks.spec import SyncOptions

    options = SyncOptions(full_resync=full_resync, dry_run=dry_run, erp_keys=key or [], projects=project or [],
                          batch_size=batch_size)
    try:
        summaries = run_entities(_settings(), None if entity == "all" else [entity], options)
    except SyncError as exc:
        _fail(exc)
    show_summaries(summaries, as_json)
    raise typer.Exit(1 if any(s.status == "failed" for s in summaries) else 0)


@app.command()
def templates(
    out: Annotated[Path, typer.Option(help="Folder to write the empty templates into.")] = Path("templates"),
    entity: Annotated[Optional[list[str]], typer.Option(help="Only this entity's template (repeatable).")] = None,
) -> None:
    """Write empty CSV templates (the header line) for the ERP → Procore entities."""
    from app.templates import write_templates

    try:
        written = write_templates(out, entity or None)
    except SyncError as exc:
        _fail(exc)
    for path in written:
        console.print(str(path))


@app.command()
def upload(
    entity: Annotated[str, typer.Argument(help="The entity the file holds, e.g. resource_people.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A CSV template of that entity.")],
    dry_run: Annotated[bool, typer.Option(help="Plan only; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The run's summary as JSON on stdout.")] = False,
) -> None:
    """Load one template file once, through the entity's usual map, plan and load, and report it."""
    install_log_redaction()
    from app.runner import upload_file

    try:
        summary = upload_file(_settings(), entity, file, dry_run=dry_run)
    except SyncError as exc:
        _fail(exc)
    show_summaries([summary], as_json)
    raise typer.Exit(1 if summary.status == "failed" else 0)


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    hourly_limit: Annotated[int, typer.Option(help="Calls per hourly window.")] = 3600,
    hourly_window_s: Annotated[int, typer.Option(help="Length of the 'hourly' window in seconds.")] = 3600,
    spike_limit: Annotated[int, typer.Option(help="Calls per spike window.")] = 25,
    spike_window_s: Annotated[int, typer.Option(help="Length of the spike window in seconds.")] = 10,
    error_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of 5xx answers.")] = 0.0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Added latency per call.")] = 0,
    lost_response_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of writes whose answer is lost.")] = 0.0,
    data_file: Annotated[Optional[Path], typer.Option(help="Keep the data in this JSON file.")] = None,
    seed: int = 0,
) -> None:
    """Run the local Procore sandbox (OAuth, vendors, quota, faults) until Ctrl-C."""
    from sandbox.config import SandboxConfig
    from sandbox.server import serve

    settings = _settings()
    config = SandboxConfig(
        company_id=settings.company_id,
        client_id=settings.client_id,
        client_secret=settings.client_secret_value,
        hourly_limit=hourly_limit,
        hourly_window_s=hourly_window_s,
        spike_limit=spike_limit,
        spike_window_s=spike_window_s,
        error_rate=error_rate,
        latency_ms=latency_ms,
        lost_response_rate=lost_response_rate,
        data_file=data_file,
        seed=seed,
    )
    console.print(f"Procore sandbox on http://{host}:{port} (company {config.company_id})")
    serve(config, host=host, port=port)


@app.command("sample-erp")
def sample_erp_command(
    out: Annotated[Path, typer.Option(help="Folder for erp.duckdb, templates/ and expected.json.")] = Path(".procore-sync/erp"),
    scale: Annotated[float, typer.Option(min=0.01, help="1 = 20 projects, 500 suppliers, 2,000 budget lines, 1,000 direct costs...")] = 1.0,
    seed: int = 42,
) -> None:
    """Write a seeded sample ERP (DuckDB file and CSV templates) with a known share of bad rows."""
    from demo import sample_erp

    summary = sample_erp.generate(out, scale=scale, seed=seed)
    console.print(f"sample ERP written to {out}: {summary}")


@app.command()
def reconcile(
    entity: Annotated[Optional[list[str]], typer.Option(help="Only this entity (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entity on stdout.")] = False,
) -> None:
    """Compare ERP and Procore per entity: counts, keys, mapped values and money totals."""
    install_log_redaction()
    from app.demo import local_sandbox_if_needed
    from app.runner import reconcile_entities

    settings = _settings()
    try:
        with local_sandbox_if_needed(settings):
            results = reconcile_entities(settings, entity or None)
    except SyncError as exc:
        _fail(exc)
    for result in results:
        if as_json:
            print(result.to_json(), flush=True)
        else:
            verdict = "no differences" if result.clean else f"{len(result.differences)} differences"
            out.print(f"{result.entity}: {result.matched}/{result.to_sync} records match, "
                      f"{result.known_failed} failed and {result.known_blocked} blocked in the ERP mapping, {verdict}")
            for diff in result.differences[:20]:
                out.print(f"  {diff.kind} {diff.key} {diff.field or ''} ERP={diff.erp!r} Procore={diff.procore!r}")
    raise typer.Exit(0 if all(r.clean for r in results) else 1)


@app.command(name="health-check")
def health_check(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check on stdout.")] = False) -> None:
    """Check every connector before go-live: each table's source (or drop), the export folder,
    Procore's token, company and permitted projects, every entity's endpoint and the quota left.
    Exits 1 when any check is not OK (the health-check deployment runs the same checks)."""
    install_log_redaction()
    from flows.health import all_checks
    from app.demo import local_sandbox_if_needed

    settings = _settings()
    with local_sandbox_if_needed(settings):
        checks = all_checks(settings)
    if as_json:
        for check in checks:
            print(check.model_dump_json(), flush=True)
    else:
        table = Table(title="procore-sync health check")
        for column in ("connector", "check", "status", "detail"):
            table.add_column(column)
        for check in checks:
            table.add_row(check.connector, check.check, check.status, check.detail)
        out.print(table)
    raise typer.Exit(0 if all(check.status == "OK" for check in checks) else 1)


@app.command()
def deployments(
    write: Annotated[bool, typer.Option(help="Write prefect.yaml instead of printing it.")] = False,
    apply: Annotated[bool, typer.Option(help="Create or update them on the Prefect server's work pool "
                                            "(as `prefect deploy --all` would) instead of printing them.")] = False,
    flow: Annotated[Optional[list[str]], typer.Option(
        help="With --apply: only this flow's deployments (a flow name such as sync-all or vendors; "
             "repeatable).")] = None,
) -> None:
    """Print (or write) prefect.yaml: the deployments for a work pool, as `demo` serves them (with
    profiles: every profile's, or --profile's alone); and create or update on the Prefect server the
    automation that marks a run Crashed when its process is gone, and the alerts (when
    PROCORE_SYNC_ALERT_BLOCK is set)."""
    from app.runner import install_automations
    from deployments import WORK_POOL, chosen_specs, companies, render_prefect_yaml

    if flow and not apply:
        raise typer.BadParameter("it chooses the deployments that --apply puts on the work pool: add --apply",
                                 param_hint="--flow")
    settings = Settings()
    try:
        chosen = companies(settings, _selected["profile"])
        text = render_prefect_yaml(*chosen)
        applied = chosen_specs(*chosen, flows=flow) if apply else []  # an unknown flow: nothing installed
        installed = install_automations(chosen[0])
    except SyncError as exc:
        _fail(exc)
    console.print(f"alerts: {', '.join(installed)}" if installed else
                  "no alerts: PROCORE_SYNC_ALERT_BLOCK is not set (docs/alerts.md)")
    if write:
        Path("prefect.yaml").write_text(text)
        console.print("prefect.yaml written")
    if apply:
        from deployments.work_pool import apply_to_work_pool

        console.print(f"{apply_to_work_pool(applied)} deployments on work pool {WORK_POOL}")
    if not (write or apply):
        print(text)


@app.command()
def serve() -> None:
    """Register and serve the deployments in this process until Ctrl-C (instead of a work pool's
    worker): with profiles, every profile's (or --profile's alone), each run with its company's settings."""
    install_log_redaction()
    from app.runner import serve_forever
    from deployments import companies

    try:
        serve_forever(*companies(Settings(), _selected["profile"]))
    except SyncError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each entity's last run, its newest crashed run and its records by status, from the state store."""
    from connectors.state import StateStore
    from flows import ENTITY_FLOWS

    settings = _settings()
    if settings.state_url is None and not settings.state_path.exists():
        console.print(f"no state yet at {settings.state_path}; run a sync first")
        raise typer.Exit(0)
    store = StateStore.open(settings)
    rows = []
    for name in ENTITY_FLOWS:
        last = store.runs(name, limit=1)
        crashed = store.runs(name, limit=1, status="crashed")
        rows.append({
            "entity": name,
            "last_run": last[0].started_at.isoformat() if last else None,
            "last_status": last[0].status if last else "never run",
            "last_crashed": {"run_id": crashed[0].run_id, "started_at": crashed[0].started_at.isoformat(),
                             "message": crashed[0].message} if crashed else None,
            "cursor": (c.isoformat() if (c := store.get_cursor(name)) else None),
            "records": store.counts_by_status(name),
        })
    if as_json:
        print(json.dumps(rows))
        return
    pairing = store.pairing()
    console.print(f"paired with {pairing.pairing.describe()} ({pairing.how})" if pairing else "not paired yet")
    table = Table(title="procore-sync status")
    for column in ("entity", "last_run", "last_status", "last_crashed", "cursor", "records"):
        table.add_column(column)
    for row in rows:
        records = ", ".join(f"{k} {v}" for k, v in sorted(row["records"].items())) or "none"
        crashed = row["last_crashed"]["started_at"] if row["last_crashed"] else ""
        table.add_row(row["entity"], str(row["last_run"]), row["last_status"], crashed, str(row["cursor"]), records)
    out.print(table)


@app.command()
def history(
    entity: Optional[str] = None,
    key: Optional[str] = None,
    status: Annotated[Optional[str], typer.Option("--status")] = None,
    since: Annotated[Optional[datetime], typer.Option(help="ISO date or time.")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")] = False,
) -> None:
    """Every action on every record, and every run found crashed and pairing made, newest first,
    from the state store."""
    from connectors.state import StateStore

    settings = _settings()
    store = StateStore.open(settings)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    columns = ("at", "entity", "key", "action", "status", "procore_id", "attempt", "message")
    rows = [dict(zip(columns, (r.at, r.entity, r.key, r.action, r.status, r.procore_id, r.attempt, r.message)))
            for r in store.history(entity=entity, key=key, status=status, since=since, limit=limit)]
    if key is None:  # runs and pairings concern no one record
        rows += [dict(zip(columns, (e.at, e.entity, None, e.what, e.status, None, None, e.message)))
                 for e in store.events(entity=entity, since=since, limit=limit) if status in (None, e.status)]
    rows = sorted(rows, key=lambda row: row["at"], reverse=True)[:limit]
    show_timed_rows("procore-sync history", columns, rows, as_json)


def show_timed_rows(title: str, columns: tuple[str, ...], rows: list[dict], as_json: bool) -> None:
    """Rows whose first column is a time: one JSON object per line, or a table."""
    when = columns[0]
    if as_json:
        for row in rows:
            print(json.dumps(row | {when: row[when].isoformat()}), flush=True)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(row[when].isoformat(timespec="seconds"), *(str(row[c] or "") for c in columns[1:]))
    out.print(table)


state_app = typer.Typer(help="The state store: which Procore and which ERP it belongs to; moving it to PostgreSQL.",
                        no_args_is_help=True)
app.add_typer(state_app, name="state")


@state_app.command("pair")
def state_pair() -> None:
    """Pair the state with these settings' Procore environment, company and ERP.

    Runs against any other pairing stop before they write; run this only when the state really
    is to serve these from now on (a new ERP, a move to production). Recorded in the history."""
    from connectors.sources import build_sources, close_sources
    from connectors.state import StateStore
    from tasks.pairing import pair

    settings = _settings()
    sources = build_sources(settings)
    try:
        before, now = pair(StateStore.open(settings), settings, sources)
    finally:
        close_sources(sources)
    if before is not None and before.pairing != now.pairing:
        console.print(f"was paired with {before.pairing.describe()} ({before.how})")
    console.print(f"paired with {now.pairing.describe()}")


@state_app.command("migrate")
def state_migrate(
    to: Annotated[str, typer.Option("--to", help="The target database: postgresql://user[:password]@host[:port]/db.")],
    source: Annotated[Optional[Path], typer.Option("--from", help="The DuckDB state file; default: the settings' state_path.")] = None,
    replace: Annotated[bool, typer.Option(help="Empty a target that already holds a state before copying.")] = False,
) -> None:
    """Copy a DuckDB state file into a PostgreSQL database (its schema migrated first), for
    workers on several hosts; then set PROCORE_SYNC_STATE_URL to it. Stop syncs first: the file
    is read as it is when the copy starts. Refuses a target that already holds a state unless
    --replace."""
    from connectors.postgres_db import is_postgres_url, redacted
    from connectors.state import StateStore
    from procore_sync.redact import register_secret

    if not is_postgres_url(to):
        console.print("[red]error:[/red] --to takes a postgresql:// URL")
        raise typer.Exit(2)
    register_secret(urlsplit(to).password)
    path = source or _settings().state_path
    if not path.exists():
        console.print(f"[red]error:[/red] no state file at {path}")
        raise typer.Exit(2)
    try:
        copied = StateStore(path).copy_into(StateStore(to), replace=replace)
    except SyncError as exc:
        _fail(exc)
    table = Table(title=f"copied {path} into {redacted(to)}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in copied.items():
        table.add_row(name, str(rows))
    out.print(table)
    console.print(f"set PROCORE_SYNC_STATE_URL={redacted(to)} (its password as you keep it) to use it")


webhooks_app = typer.Typer(help="Procore webhooks: Procore's changes start targeted runs within seconds "
                                "(install, serve, health-check, events).",
                           no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("serve")
def webhooks_serve() -> None:
    """Receive Procore's webhook deliveries (PROCORE_SYNC_WEBHOOK_*) and start a targeted run of
    each changed entity's deployment, until Ctrl-C."""
    install_log_redaction()
    from app.receiver import serve

    try:
        serve(_settings(), ready=lambda url: console.print(f"receiving Procore's webhook deliveries on {url}"))
    except SyncError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@webhooks_app.command("events")
def webhooks_events(
    status: Annotated[Optional[str], typer.Option(
        help="Only pending, started, echo, drift or ignored events.")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")] = False,
) -> None:
    """The webhook events received, oldest first: the run each started, or why none."""
    from connectors.state import StateStore

    settings = _settings()
    events = StateStore.open(settings).webhook_events(status=status, limit=limit)
    columns = ("received_at", "resource_name", "event_type", "resource_id", "project_id", "status", "entity",
               "flow_run_id", "message")
    show_timed_rows("procore-sync webhook events", columns, [{c: getattr(e, c) for c in columns} for e in events],
                    as_json)


@contextmanager
def _webhooks_api(settings: Settings) -> Iterator["WebhooksApi"]:
    """The company's webhook operations, through a Procore client closed after the command."""
    from connectors.procore import ProcoreClient
    from connectors.procore_webhooks import WebhooksApi

    with ProcoreClient(settings) as client:
        yield WebhooksApi(client, settings.company_id)


@webhooks_app.command("install")
def webhooks_install() -> None:
    """Create the company hook (namespace, URL, secret from the settings) and the triggers the
    configured entities need; run again, it adds only what is missing."""
    install_log_redaction()
    from flows import configured_resources
    from tasks.webhooks import install

    settings = _settings()
    try:
        with _webhooks_api(settings) as api:
            done = install(api, settings, configured_resources(settings))
    except SyncError as exc:
        _fail(exc)
    verb = "created" if done.created else "found" + (", secret updated" if done.secret_updated else "")
    out.print(f"hook {done.hook_id} {verb}: {settings.webhook_namespace} → {settings.webhook_url}")
    out.print(f"triggers: {len(done.added)} added, {done.kept} already there")
    for key in done.added:
        out.print(f"  + {key}")


@webhooks_app.command("uninstall")
def webhooks_uninstall() -> None:
    """Remove the hook of this namespace and URL, and its triggers."""
    install_log_redaction()
    from tasks.webhooks import uninstall

    settings = _settings()
    try:
        with _webhooks_api(settings) as api:
            removed = uninstall(api, settings)
    except SyncError as exc:
        _fail(exc)
    out.print(f"hook {removed} removed" if removed else f"no hook of {settings.webhook_namespace} for {settings.webhook_url}")


@webhooks_app.command("health-check")
def webhooks_health_check(as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False) -> None:
    """The hook, its triggers and its latest deliveries' outcomes; exits 1 when it is missing,
    lacks triggers, or deliveries are failing or were discarded."""
    install_log_redaction()
    from flows import configured_resources
    from tasks.webhooks import health

    settings = _settings()
    try:
        with _webhooks_api(settings) as api:
            report = health(api, settings, configured_resources(settings))
    except SyncError as exc:
        _fail(exc)
    if as_json:
        print(report.model_dump_json(), flush=True)
    else:
        table = Table(title="procore-sync webhooks")
        table.add_column("check")
        table.add_column("detail")
        table.add_row("status", report.status)
        table.add_row("hook", f"{report.hook_id} {report.namespace} → {report.destination_url}")
        table.add_row("triggers", f"{len(report.triggers)}" + (f", missing: {', '.join(report.missing_triggers)}"
                                                              if report.missing_triggers else ""))
        table.add_row("latest deliveries", ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.outcomes.items())) or "none")
        table.add_row("failing now", str(report.failing))
        table.add_row("discarded", str(report.discarded))
        if report.last_error:
            table.add_row("last error", report.last_error)
        out.print(table)
    raise typer.Exit(0 if report.healthy else 1)


alerts_app = typer.Typer(help="Alerts: Prefect automations that send a message when a run fails or crashes, "
                                "waits too long for quota, the health check is red or webhooks fail.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("set-webhook")
def alerts_set_webhook(
    url: Annotated[str, typer.Argument(help="Where the alerts are POSTed.")],
    slack: Annotated[bool, typer.Option("--slack", help="A Slack(-compatible) incoming webhook.")] = False,
    name: Annotated[str, typer.Option(help="The block's name.")] = "procore-sync-alerts",
) -> None:
    """Save the notification block the alerts send through, and say what to set."""
    from deployments.alerts import save_webhook_block

    reference = save_webhook_block(url, slack=slack, name=name)
    print(f"PROCORE_SYNC_ALERT_BLOCK={reference}")
    console.print("set it (.env or environment), then `procore-sync alerts install` (or any command that "
                  "creates the deployments) creates the alerts")


@alerts_app.command("install")
def alerts_install() -> None:
    """Create or update the alerts by name (run twice: nothing doubles)."""
    from deployments.alerts import install_alerts

    settings = _settings()
    if not settings.alert_block:
        _fail(SyncError("PROCORE_SYNC_ALERT_BLOCK is not set; `procore-sync alerts set-webhook URL` creates "
                        "a block and prints the value"))
    try:
        console.print(f"alerts: {', '.join(install_alerts(settings))}")
    except SyncError as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="procore-sync")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
