"""One module per synced entity (or family of entities); each declares models, mapping and spec.

This package registers every spec once, parents first (``register``, ``flows/registry.py``),
which makes each entity's flow from its spec: ``ENTITY_FLOWS`` names every entity and its flow
in dependency order, both directions: ERP → Procore (an ``EntitySpec``) and Procore → ERP (an
``InboundSpec``: change orders, modified budget). The CLI, the demo, sync-all and the
deployments all read it, so registering an entity here makes it runnable everywhere.
"""

from __future__ import annotations

import sys

from prefect import Flow
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.settings import Settings as PrefectSettings

from flows.budget import BUDGET_LINES
from flows.change_orders import COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS
from flows.commitments import PURCHASE_ORDER_LINES, PURCHASE_ORDERS, SUBCONTRACT_LINES, SUBCONTRACTS
from flows.cost_structure import COST_TYPES, PROJECT_COST_CODES, STANDARD_COST_CODES, SUB_JOBS, WBS_CODES
from flows.customers import CUSTOMERS
from flows.direct_costs import DIRECT_COST_LINES, DIRECT_COSTS
from flows.employees import EMPLOYEES
from flows.modified_budget import BUDGET_CHANGES, BUDGET_MODIFICATIONS
from flows.prime_contracts import PRIME_CONTRACT_LINES, PRIME_CONTRACTS
from flows.projects import PROJECTS
from flows.registry import ENTITY_FLOWS, ENTRYPOINT_MODULE, flow_attribute, register
from flows.resource_planning import RESOURCE_PEOPLE, RESOURCE_PROJECTS
from flows.vendors import VENDORS
from procore_sync.settings import Settings
from tasks.prefect_run import summary_of
from tasks.report import RunSummary
from tasks.spec import SyncOptions

# Every entity, once, parents first: the dependency order sync-all and the CLI list them in.
register(
    VENDORS,
    CUSTOMERS,
    EMPLOYEES,
    PROJECTS,
    STANDARD_COST_CODES,
    COST_TYPES,
    SUB_JOBS,
    PROJECT_COST_CODES,
    WBS_CODES,
    BUDGET_LINES,
    PRIME_CONTRACTS,
    PRIME_CONTRACT_LINES,
    SUBCONTRACTS,
    SUBCONTRACT_LINES,
    PURCHASE_ORDERS,
    PURCHASE_ORDER_LINES,
    DIRECT_COSTS,
    DIRECT_COST_LINES,
    COMMITMENT_CHANGE_ORDERS,
    PRIME_CHANGE_ORDERS,
    BUDGET_CHANGES,
    BUDGET_MODIFICATIONS,
    RESOURCE_PEOPLE,
    RESOURCE_PROJECTS,
)
# The two modified-budget entities read the two budget tools; a company uses one of them.
BUDGET_TOOL_ENTITIES = {BUDGET_CHANGES.name: "budget_changes", BUDGET_MODIFICATIONS.name: "budget_modifications"}


def enabled(name: str, settings: Settings) -> bool:
    """Whether sync-all runs the entity: all but the budget tool the company does not use."""
    return BUDGET_TOOL_ENTITIES.get(name, settings.budget_tool) == settings.budget_tool


def configured_resources(settings: Settings) -> list[str]:
    """Procore's webhook resource names of the entities sync-all runs, in their order."""
    names = [name for entity, (spec, _) in ENTITY_FLOWS.items() if enabled(entity, settings)
             for name in spec.webhook_resources]
    return list(dict.fromkeys(names))


def entrypoint(flow: Flow) -> str:
    """``flows/<module>.py:<attribute>`` for a deployment: ``flows/entities.py:sync_<name>`` for an
    entity's flow, else found where the flow is defined."""
    if attribute := flow_attribute(flow):
        return f"{ENTRYPOINT_MODULE.replace('.', '/')}.py:{attribute}"
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("flows.") and module is not None:
            for attribute, value in vars(module).items():
                if value is flow:
                    return f"{module_name.replace('.', '/')}.py:{attribute}"
    raise LookupError(f"flow {flow.name} is not a module attribute under flows/")


def run_inside(name: str, options: SyncOptions, settings: Settings) -> RunSummary:
    """``name``'s flow as a subflow of this process's flow run (sync-all, resync-failed): its
    summary, also when it failed.

    The parent's heartbeat (Prefect's sign that a run's process is alive) speaks for the
    subflow, which lives and dies with that process; a heartbeat of its own would cost each
    entity's run up to a second at its end, as Prefect joins the heartbeat's thread, which
    sleeps in one-second steps."""
    context = get_settings_context()
    with SettingsContext(profile=context.profile, settings=_without_heartbeat(context.settings)):
        state = ENTITY_FLOWS[name][1](options=options, return_state=True, **profile_parameter(settings))
    return summary_of(state, name, settings)


def profile_parameter(settings: Settings) -> dict[str, str]:
    """The ``profile`` parameter of a flow run with these settings; none for the base settings,
    so a run without profiles has exactly the parameters it always had."""
    return {"profile": settings.profile} if settings.profile else {}


_WITHOUT_HEARTBEAT: dict[int, tuple[PrefectSettings, PrefectSettings]] = {}


def _without_heartbeat(settings: PrefectSettings) -> PrefectSettings:
    """``settings`` with no flow heartbeat, made once per settings object: Prefect builds a copy
    from every settings source, its files read again for each of its 50-odd sections (measured:
    a quarter of a second of CPU per entity run, most of a no-change sync-all's local time)."""
    made = _WITHOUT_HEARTBEAT.get(id(settings))
    if made is None or made[0] is not settings:
        made = (settings, settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        _WITHOUT_HEARTBEAT[id(settings)] = made
    return made[1]


def levels() -> list[list[str]]:
    """Entities in dependency order, grouped so that each group depends only on earlier ones."""
    done: set[str] = set()
    remaining = list(ENTITY_FLOWS)
    result: list[list[str]] = []
    while remaining:
        ready = [n for n in remaining if set(ENTITY_FLOWS[n][0].depends_on) <= done]
        if not ready:
            raise ValueError(f"dependency cycle among {remaining}")
        result.append(ready)
        done |= set(ready)
        remaining = [n for n in remaining if n not in done]
    return result
