"""sync-all: every entity in dependency order, independent ones at the same time.

Entities of one level depend only on earlier levels, so each level's flows run concurrently (as
subflows, each with its own report) within the one shared quota. A failed entity does not stop
the others: its dependants still run, and their records that need it are blocked, naming it.
The Procore → ERP entities (change orders, modified budget) come after the contracts and WBS
codes whose id maps link them back to the ERP. The company is checked once, for all of them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prefect import flow

from flows import ENTITY_FLOWS, enabled, levels, run_inside
from procore_sync.settings import Settings
from tasks.engine import one_company_check
from tasks.report import RunSummary, publish_overview
from tasks.spec import SyncOptions

MAX_PARALLEL = 4


def run_level(names: list[str], options: SyncOptions, settings: Settings) -> list[RunSummary]:
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
        return list(pool.map(lambda name: run_inside(name, options, settings), names))


@flow(name="sync-all", description=__doc__)
def sync_all(options: SyncOptions = SyncOptions()) -> list[RunSummary]:
    """Sync every entity, both directions, parents first."""
    entity_options = options.model_copy(update={"erp_keys": []})
    settings = Settings()
    runnable = [[name for name in level if enabled(name, settings)] for level in levels()]
    with one_company_check(settings):  # one call for every entity run, not one each
        summaries = [s for level in runnable if level for s in run_level(level, entity_options, settings)]
        # Contracts kept in Draft until their lines landed get their ERP status now.
        revisits = [name for name, (spec, _) in ENTITY_FLOWS.items() if spec.revisit]
        final = {s.entity: s for s in run_level(revisits, entity_options, settings)} if revisits else {}
    summaries = [merge(s, final[s.entity]) if s.entity in final else s for s in summaries]
    publish_overview(summaries)
    return summaries


def merge(first: RunSummary, second: RunSummary) -> RunSummary:
    """One line per entity in the overview: the two passes' calls added up, the last state."""
    added = {k: getattr(first, k) + getattr(second, k)
             for k in ("updated", "api_calls", "write_calls", "min_write_calls", "token_calls", "retries")}
    # Records the second pass released were counted as warnings (held back) by the first.
    warnings = max(0, first.warnings - second.updated) + second.warnings
    return first.model_copy(update=added | {"status": second.status if second.status == "failed" else first.status,
                                            "warnings": warnings,
                                            "duration_s": round(first.duration_s + second.duration_s, 3)})
