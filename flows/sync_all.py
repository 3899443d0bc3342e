"""sync-all: every entity in dependency order, independent ones at the same time.

Each entity's flow starts as soon as the entities it depends on have finished (at most
``MAX_PARALLEL`` at once, as subflows, each with its own report, within the one shared quota):
not when a whole level of the dependency order has, whose slowest member may be slow for reasons
of its own while the quota sits unspent. A failed entity does not stop the others: its dependants
still run, and their records that need it are blocked, naming it. The Procore → ERP entities
(change orders, modified budget) come after the contracts and WBS codes whose id maps link them
back to the ERP. Entities revisited (contracts kept in Draft until their lines landed) run a
second time once everything that depends on them has finished. The company is checked once, for
all of them. While Procore's webhooks deliver the Procore → ERP entities' changes (the hook
healthy), those are read only once their last full read is ``webhook_sweep_s`` old: the safety
net (``tasks.webhooks.left_to_webhooks``); a full resync reads them all.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from prefect import flow, get_run_logger

from flows import ENTITY_FLOWS, configured_resources, enabled, levels, run_inside
from procore_sync.profiles import load_settings
from tasks.company import one_company_check
from tasks.report import RunSummary, publish_overview
from tasks.spec import SyncOptions
from tasks.webhooks import polling_left_to_webhooks

MAX_PARALLEL = 4


@dataclass(frozen=True)
class Step:
    """One entity run of sync-all: an entity's first pass, or its revisit."""

    entity: str
    revisit: bool = False


def schedule(names: list[str]) -> dict[Step, set[Step]]:
    """Each step and the steps that must have finished before it starts: an entity's parents
    among ``names``; a revisit, every step that depends on its entity, directly or not."""
    first = {Step(n): {Step(p) for p in ENTITY_FLOWS[n][0].depends_on if p in names} for n in names}
    # Descendants among the first passes only: two revisits do not wait for each other.
    revisits = {Step(n, revisit=True): {Step(n)} | descendants(first, Step(n))
                for n in names if ENTITY_FLOWS[n][0].revisit}
    return first | revisits


def descendants(after: Mapping[Step, set[Step]], step: Step) -> set[Step]:
    found: set[Step] = set()
    while True:
        more = {s for s, parents in after.items() if parents & (found | {step})} - found
        if not more:
            return found
        found |= more


def critical_first(after: Mapping[Step, set[Step]]) -> list[Step]:
    """The steps, those with the longest chain of steps waiting on them first (ties in the given
    order): with ``MAX_PARALLEL`` runs at once, a long chain started late ends the sync late."""
    depth: dict[Step, int] = {}

    def chain(step: Step) -> int:
        if step not in depth:
            depth[step] = 1 + max((chain(s) for s, parents in after.items() if step in parents), default=0)
        return depth[step]

    order = list(after)
    return sorted(order, key=lambda s: (-chain(s), order.index(s)))


def run_steps(after: Mapping[Step, set[Step]], run: Callable[[Step], RunSummary],
              max_parallel: int = MAX_PARALLEL) -> dict[Step, RunSummary]:
    """Run every step once its ``after`` steps have finished, failed or not, at most
    ``max_parallel`` at a time; returns each step's summary.

    Each step runs in a copy of the caller's context: Prefect finds the parent of a flow called
    inside a flow run in the context (``FlowRunContext``), which a pool's thread does not
    inherit, and without it an entity's run is not sync-all's subflow in the UI."""
    waiting, done = critical_first(after), {}
    running: dict[Future[RunSummary], Step] = {}
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        while waiting or running:
            for step in [s for s in waiting if after[s] <= done.keys()][:max_parallel - len(running)]:
                waiting.remove(step)
                running[pool.submit(contextvars.copy_context().run, run, step)] = step
            if not running:
                raise ValueError(f"dependency cycle among {[s.entity for s in waiting]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()
    return done


@flow(name="sync-all", description=__doc__)
def sync_all(options: SyncOptions = SyncOptions(), profile: str | None = None) -> list[RunSummary]:
    """Sync every entity, both directions, parents first (the profile's company, if one is named)."""
    entity_options = options.model_copy(update={"erp_keys": []})
    settings = load_settings(profile)
    # Summaries in the dependency order's levels, as the overview always listed them.
    names = [name for level in levels() for name in level if enabled(name, settings)]
    with one_company_check(settings):  # one call for every entity run, not one each
        # A full resync reads everything; otherwise healthy webhooks may stand for the polling.
        inbound = [] if options.full_resync else [n for n in names if ENTITY_FLOWS[n][0].inbound]
        left, why = polling_left_to_webhooks(settings, inbound, configured_resources(settings))
        if why:
            get_run_logger().info(why)
        names = [n for n in names if n not in left]
        done = run_steps(schedule(names), lambda step: run_inside(step.entity, entity_options, settings))
    # Contracts kept in Draft until their lines landed got their ERP status in their revisit.
    summaries = [merge(done[Step(n)], done[Step(n, True)]) if Step(n, True) in done else done[Step(n)]
                 for n in names]
    publish_overview(summaries)
    return summaries


def merge(first: RunSummary, second: RunSummary) -> RunSummary:
    """One line per entity in the overview: the two passes' calls added up, the last state."""
    added = {k: getattr(first, k) + getattr(second, k)
             for k in ("updated", "api_calls", "write_calls", "min_write_calls", "token_calls", "retries")}
    # Records the second pass released were counted as warnings (held back) by the first.
    warnings = max(0, first.warnings - second.updated) + second.warnings
    return first.model_copy(update=added | {"status": second.status if second.status == "failed" else first.status,
                                            "warnings": warnings, "revisit_flow_run_id": second.flow_run_id,
                                            "duration_s": round(first.duration_s + second.duration_s, 3)})
