"""The entity registry: each entity is registered once, after its parents, and its Prefect flow
is made from its spec.

``register`` adds specs to ``ENTITY_FLOWS`` (re-exported by ``flows``), which the CLI, the demo,
sync-all, the deployments and the tests read; ``entity_flow`` is the one flow every entity
runs, an ``EntitySpec`` through the engine (ERP → Procore), an ``InboundSpec`` through the
inbound run (Procore → ERP). A deployment finds a registered entity's flow at
``flows/entities.py:sync_<name>`` (``ENTRYPOINT_MODULE``).
"""

from __future__ import annotations

from prefect import Flow, flow

from tasks.engine import run_entity
from tasks.inbound import InboundSpec, run_inbound
from tasks.report import RunSummary
from tasks.spec import EntitySpec, SyncOptions

Spec = EntitySpec | InboundSpec

# Entity name → (spec, flow), in registration order: parents before their children.
ENTITY_FLOWS: dict[str, tuple[Spec, Flow]] = {}
ENTRYPOINT_MODULE = "flows.entities"


def register(*specs: Spec) -> None:
    """Add each spec and its flow; a spec's parents must be registered before it, so the order
    of ``ENTITY_FLOWS`` is a dependency order."""
    for spec in specs:
        if spec.name in ENTITY_FLOWS:
            raise ValueError(f"entity {spec.name} is registered already")
        missing = [parent for parent in spec.depends_on if parent not in ENTITY_FLOWS]
        if missing:
            raise ValueError(f"register {', '.join(missing)} before {spec.name}, which depends on them")
        ENTITY_FLOWS[spec.name] = (spec, entity_flow(spec))


def entity_flow(spec: Spec) -> Flow:
    """The Prefect flow named for the entity, whose run form is ``SyncOptions``."""
    if isinstance(spec, EntitySpec):
        def sync(options: SyncOptions = SyncOptions()) -> RunSummary:
            return run_entity(spec, options)
    else:
        def sync(options: SyncOptions = SyncOptions()) -> RunSummary:
            return run_inbound(spec, options)

    # A name of its own: Prefect keys the task run that stands for a subflow in its parent
    # (sync-all) by the function's name and code, and sync-all runs entities at once. The module
    # is where deployments load it from, so a served deployment names the entrypoint prefect.yaml does.
    sync.__name__ = sync.__qualname__ = f"sync_{spec.name}"
    sync.__module__ = ENTRYPOINT_MODULE
    return flow(name=spec.name, description=description_of(spec))(sync)


def description_of(spec: Spec) -> str:
    direction = "the ERP to Procore" if isinstance(spec, EntitySpec) else "Procore to the ERP"
    return f"Sync {spec.display_name} from {direction}."


def flow_attribute(flow_: Flow) -> str | None:
    """``sync_<name>`` for a registered entity's flow, else None."""
    for name, (_, registered) in ENTITY_FLOWS.items():
        if registered is flow_:
            return f"sync_{name}"
    return None
