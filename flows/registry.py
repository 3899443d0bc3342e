"""The entity registry: each entity is registered once, after its parents, and its Prefect flow
is made from its spec.

``register`` adds specs to ``ENTITY_FLOWS`` (re-exported by ``flows``), which the CLI, the demo,
sync-all, the deployments and the tests read; ``entity_flow`` is the one flow every entity
runs, through the engine's run of the spec's direction (``tasks.engine.run_entity``). A deployment finds a registered entity's flow at
``flows/entities.py:sync_<name>`` (``ENTRYPOINT_MODULE``). Each ERP → Procore entity's CSV
template is its ERP model (``template_columns``), which the templates and the sample ERP read.
"""

from __future__ import annotations

from prefect import Flow, flow
from pydantic import BaseModel

from procore_sync.profiles import load_settings

from tasks.engine import run_entity
from tasks.report import RunSummary
from tasks.run import default_runtime
from tasks.spec import Spec, SyncOptions

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
    """The Prefect flow named for the entity, whose run form is ``SyncOptions``; ``profile`` names
    the company whose settings the run uses (``procore_sync.profiles``; none: the base settings),
    a parameter because served deployments share one process and its environment."""
    def sync(options: SyncOptions = SyncOptions(), profile: str | None = None) -> RunSummary:
        return run_entity(spec, options, default_runtime(load_settings(profile)))

    # A name of its own: Prefect keys the task run that stands for a subflow in its parent
    # (sync-all) by the function's name and code, and sync-all runs entities at once. The module
    # is where deployments load it from, so a served deployment names the entrypoint prefect.yaml does.
    sync.__name__ = sync.__qualname__ = f"sync_{spec.name}"
    sync.__module__ = ENTRYPOINT_MODULE
    return flow(name=spec.name, description=description_of(spec))(sync)


def description_of(spec: Spec) -> str:
    direction = "Procore to the ERP" if spec.inbound else "the ERP to Procore"
    return f"Sync {spec.display_name} from {direction}."


def flow_attribute(flow_: Flow) -> str | None:
    """``sync_<name>`` for a registered entity's flow, else None."""
    for name, (_, registered) in ENTITY_FLOWS.items():
        if registered is flow_:
            return f"sync_{name}"
    return None


def template_columns() -> dict[str, list[str]]:
    """Each ERP → Procore table's template columns, in sync order."""
    specs = [spec for spec, _ in ENTITY_FLOWS.values() if not spec.inbound]
    return {spec.erp_table: columns_of(spec.erp_model, spec.key_field) for spec in specs}


def columns_of(model: type[BaseModel], key: str) -> list[str]:
    """The model's columns with the key first and ``updated_at`` last, the rest in the model's
    order; a field's column is its validation alias where it has one (the shared line and
    commitment models name their table's key column that way), else its name."""
    named = [info.validation_alias if isinstance(info.validation_alias, str) else name
             for name, info in model.model_fields.items()]
    if key not in named:
        raise ValueError(f"{model.__name__} has no column {key}, its key")
    rest = [column for column in named if column not in (key, "updated_at")]
    return [key, *rest, *(["updated_at"] if "updated_at" in named else [])]
