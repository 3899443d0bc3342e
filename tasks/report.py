"""The sync report: Prefect artifacts on the flow run.

Three artifacts per entity run: a progress bar updated while loading, a table of every failed
and warning record (chunked so each stays under Prefect Cloud's 5 MiB request cap), and a
markdown summary. Nothing is logged per record; the durable history lives in DuckDB.
Outside a flow run (a benchmark calling the engine directly) there is nothing to attach
artifacts to, so these functions do nothing there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext
from prefect.utilities.urls import url_for
from pydantic import BaseModel

from tasks.actions import Action

MAX_ARTIFACT_BYTES = 4 * 1024 * 1024
REPORT_COLUMNS = ("entity", "erp_key", "procore_id", "action", "status", "message")


class RunSummary(BaseModel):
    """What one entity run did; printed by ``--json`` and rendered as the markdown summary."""

    entity: str
    run_id: str
    flow_run_id: str | None = None
    # sync-all's second pass of a revisited entity (``flows.sync_all.merge``): its own flow run.
    revisit_flow_run_id: str | None = None
    status: str
    # erp_to_procore, or procore_to_erp (change orders, modified budget).
    direction: str = "erp_to_procore"
    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    blocked: int = 0
    warnings: int = 0
    api_calls: int = 0
    write_calls: int = 0
    # Records written to the ERP's tables and export files (Procore → ERP entities).
    erp_writes: int = 0
    # The fewest write calls the endpoints allow for this run's writes (one batch per scope).
    min_write_calls: int = 0
    token_calls: int = 0
    retries: int = 0
    # Calls spent halving batches Procore refused as a whole until the bad lines stood alone.
    split_calls: int = 0
    waited_s: float = 0.0
    quota_remaining: int | None = None
    duration_s: float = 0.0
    cursor_before: str | None = None
    cursor_after: str | None = None
    # Blocked records whose parent failed (or waits under one that did): they wait for an
    # operator, so a completed run that leaves some says so (message, overview, title).
    blocked_under_failed_parent: int = 0
    message: str | None = None


def _in_flow_run() -> bool:
    return FlowRunContext.get() is not None


def artifact_key(entity: str, kind: str) -> str:
    """Keys may hold only lowercase letters, digits and dashes."""
    raw = f"{entity}-{kind}".lower()
    return "".join(ch if ch.isalnum() else "-" for ch in raw)


class Progress:
    """A progress artifact, created at 0 % and moved as batches land; none for a run with
    nothing to send (it would stay at 0 % on a run that completed)."""

    def __init__(self, entity: str, total: int) -> None:
        self.total = total  # moved only when there is an artifact, so never 0 there
        self.done = 0
        self._id: UUID | None = None
        if total and _in_flow_run():
            self._id = create_progress_artifact(
                progress=0.0,
                key=artifact_key(entity, "progress"),
                description=f"{entity}: records sent to Procore",
            )

    def advance(self, count: int) -> None:
        self.done += count
        if self._id is not None:
            percent = min(100.0, 100.0 * self.done / self.total)
            update_progress_artifact(self._id, percent, description=f"{self.done}/{self.total}")


def report_rows(entity: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{column: row.get(column) for column in REPORT_COLUMNS} | {"entity": entity} for row in rows]


def chunk_rows(rows: Sequence[dict[str, Any]], max_bytes: int = MAX_ARTIFACT_BYTES) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        row_size = len(json.dumps(row, default=str)) + 2
        if chunks[-1] and size + row_size > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += row_size
    return chunks


def publish_records(entity: str, rows: Sequence[dict[str, Any]], *, what: str = "records") -> None:
    """Table artifact(s) of failed, blocked and warning records (or the whole plan on a dry run)."""
    if not _in_flow_run():
        return
    chunks = chunk_rows(report_rows(entity, rows))
    for number, chunk in enumerate(chunks, start=1):
        part = f" (part {number} of {len(chunks)})" if len(chunks) > 1 else ""
        suffix = what if number == 1 else f"{what}-{number}"
        create_table_artifact(
            table=chunk or [dict.fromkeys(REPORT_COLUMNS, "") | {"message": "nothing to report"}],
            key=artifact_key(entity, suffix),
            description=f"{entity}: {len(rows)} {what.replace('-', ' ')}{part}",
        )


def plan_rows(actions: Iterable[Action]) -> list[dict[str, Any]]:
    return [
        {
            "erp_key": action.key,
            "procore_id": action.procore_id,
            "action": action.kind,
            "status": {"fail": "failed", "blocked": "blocked"}.get(action.kind, "warning" if action.warnings else "ok"),
            "message": action.message or "; ".join(action.warnings) or None,
        }
        for action in actions
    ]


OVERVIEW_COLUMNS = ("entity", "status", "run", "created", "updated", "unchanged", "failed", "blocked", "warnings",
                    "api_calls", "write_calls", "duration_s", "message")


def publish_overview(summaries: Sequence[RunSummary]) -> None:
    """sync-all's one table: every entity with its state and counts."""
    if not _in_flow_run():
        return
    rows = [overview_row(s) for s in summaries]
    failed = sum(s.status == "failed" for s in summaries)
    stuck = sum(s.status != "failed" and s.blocked_under_failed_parent > 0 for s in summaries)
    under = f", {stuck} with records blocked under a failed parent" if stuck else ""
    create_table_artifact(table=rows, key="sync-all-overview",
                          description=f"sync-all: {len(summaries)} entities, {failed} failed{under}")


def overview_row(s: RunSummary) -> dict[str, Any]:
    shown = {"status": overview_status(s), "run": run_links(s)}
    return {c: shown[c] if c in shown else getattr(s, c) for c in OVERVIEW_COLUMNS}


def run_links(s: RunSummary) -> str:
    """Links to the entity's flow run pages (and its revisit's), as markdown, which the UI's
    table renders as links: the overview leads to the run with the records table and summary."""
    runs = [("run", s.flow_run_id), ("revisit", s.revisit_flow_run_id)]
    return " · ".join(f"[{label}]({url})" if (url := url_for("flow-run", obj_id=run_id)) else run_id
                      for label, run_id in runs if run_id)


def overview_status(s: RunSummary) -> str:
    """The status an operator reads: a completed run that leaves records blocked under a failed
    parent is named so, neither a plain "completed" nor "failed"."""
    if s.status == "completed" and s.blocked_under_failed_parent:
        return f"completed, {s.blocked_under_failed_parent} blocked under a failed parent"
    return s.status


def publish_summary(summary: RunSummary) -> None:
    if not _in_flow_run():
        return
    create_markdown_artifact(
        markdown=render_summary(summary),
        key=artifact_key(summary.entity, "summary"),
        description=f"{summary.entity}: run summary",
    )


def render_summary(s: RunSummary) -> str:
    title = "Dry run (nothing written)" if s.dry_run else f"Sync {overview_status(s)}"
    lines = [
        f"# {s.entity}: {title}",
        "",
        "| created | updated | unchanged | failed | blocked | warnings |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s.created} | {s.updated} | {s.unchanged} | {s.failed} | {s.blocked} | {s.warnings} |",
        "",
        f"- **API calls**: {s.api_calls} ({s.write_calls} writes, {s.retries} retries, "
        f"{s.token_calls} token requests)",
        *([f"- **Refused batches split**: {s.split_calls} calls isolating the lines Procore refused "
           "without naming them"] if s.split_calls else []),
        f"- **Quota left** in Procore's window: {_or_unknown(s.quota_remaining)}; "
        f"waited for quota {s.waited_s:.1f} s",
        f"- **Duration**: {s.duration_s:.1f} s",
        f"- **Cursor**: {_or_unknown(s.cursor_before)} → {_or_unknown(s.cursor_after)}",
        f"- **State run id**: `{s.run_id}`",
    ]
    if s.message:
        lines += ["", f"> {s.message}"]
    if s.failed or s.blocked:
        lines += [
            "",
            f"Failed and blocked records are listed in the `{artifact_key(s.entity, 'records')}` table. "
            "Fix them at their source; the next run picks up every record changed since. To resync "
            f"them now, run the `resync-failed` deployment with `entities: [\"{s.entity}\"]` (a dry run "
            "first shows which records), or this flow with `erp_keys` set to the chosen records.",
        ]
    return "\n".join(lines)


def _or_unknown(value: object) -> str:
    return "unknown" if value is None else str(value)
