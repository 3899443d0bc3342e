"""What an entity declares, and the options every entity flow takes.

An entity module in ``flows/`` builds one ``EntitySpec``: its models, its pure mapping function,
its parents and where it goes in Procore (a ``Target`` and a writer). The engine
(``tasks.engine``) needs nothing else to extract, map, plan, load, record and report it.

``Spec`` is what every entity answers whichever way it syncs (``EntitySpec`` ERP → Procore,
``tasks.inbound.InboundSpec`` Procore → ERP): its direction, the ERP tables it reads or writes,
its health probe. Callers ask the spec, never its class; the run and the reconciliation are
chosen by ``direction`` above this module (``tasks.engine.run_entity``,
``tasks.reconcile.reconcile_entity``), so this module imports no engine.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from procore_sync.records import Outcome, ParentState
from tasks.actions import Action

if TYPE_CHECKING:
    from connectors.procore import ProcoreClient


class Mapped(BaseModel):
    """The result of mapping one ERP record.

    ``scope`` holds the Procore ids that choose the request the record goes in (``project_id``,
    a contract id...); records with the same scope are batched together.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    payload: BaseModel
    warnings: list[str] = Field(default_factory=list)
    scope: dict[str, int] = Field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """Where a batch of records is written: the path (its ``{placeholders}`` are filled from the
    scope) and which scope values travel in the body and which in the query."""

    path: str
    method: str = "PATCH"
    body_scope: tuple[str, ...] = ("company_id",)
    query_scope: tuple[str, ...] = ()
    items_key: str = "updates"

    def request(self, scope: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        path = self.path.format(**scope)
        return path, {k: scope[k] for k in self.body_scope}, {k: scope[k] for k in self.query_scope}


@dataclass(frozen=True)
class NaturalKey:
    """What Procore matches an entity's records on where they carry no origin_id, as a function
    of the mapped payload and scope (``tasks.keys``); ``name`` and ``rule`` tell the operator
    ("WBS code", "Procore keeps one budget line per WBS code")."""

    name: str
    of: Callable[[dict[str, Any], dict[str, int]], Hashable]
    rule: str


class References(Protocol):
    """What a mapping function may ask about parents: ``tasks.refs.Refs`` answers it from the
    state and the ERP. The spec names the questions, not the storage that answers them."""

    context: dict[str, Any]

    def id(self, parent: EntitySpec, key: str | None, what: str | None = None) -> int: ...

    def erp_key(self, parents: tuple[EntitySpec, ...], procore_id: Any, what: str) -> tuple[EntitySpec, str]: ...

    def erp_row(self, parent: EntitySpec, key: str | None, what: str | None = None) -> dict[str, Any]: ...

    def erp_rows(self, parent: EntitySpec) -> dict[str, dict[str, Any]]: ...

    def states(self, parent: EntitySpec) -> dict[str, ParentState]: ...

    def keys_by_id(self, parent: EntitySpec) -> dict[int, str]: ...


# Which way an entity's records go; each direction's run is a ``Work`` of the same name
# (``tasks.outbound.ErpToProcore``, ``tasks.inbound.ProcoreToErp``).
Direction = Literal["erp_to_procore", "procore_to_erp"]
ERP_TO_PROCORE: Direction = "erp_to_procore"
PROCORE_TO_ERP: Direction = "procore_to_erp"


class Spec(Protocol):
    """What every entity declares, whichever way it syncs. Code that handles both kinds asks
    these, not the class; what only one direction has (a writer, a sink table) stays on its own
    spec, reached where the caller picked that direction by ``inbound``."""

    @property
    def name(self) -> str: ...

    @property
    def direction(self) -> Direction: ...

    @property
    def inbound(self) -> bool:
        """Procore → ERP: the field's changes read from Procore and written to the ERP."""
        ...

    @property
    def display_name(self) -> str: ...

    @property
    def erp_tables(self) -> tuple[str, ...]:
        """The ERP tables the entity reads (ERP → Procore) or writes (Procore → ERP)."""
        ...

    @property
    def probe_path(self) -> str:
        """The Procore path the health check reads ({company_id}, {project_id} placeholders)."""
        ...

    @property
    def parents(self) -> tuple[EntitySpec, ...]: ...

    @property
    def depends_on(self) -> tuple[str, ...]: ...

    @property
    def revisit(self) -> bool: ...

    @property
    def webhook_resources(self) -> tuple[str, ...]: ...

    def probe(self, client: ProcoreClient, context: dict[str, Any]) -> None:
        """One small read of the entity's endpoint (the health check); raises what Procore answered."""
        ...


class Writer(Protocol):
    """How a batch of planned writes reaches Procore (``tasks/writers.py``): one outcome per action."""

    def write(
        self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]
    ) -> list[Outcome]: ...

    def fewest_calls(self, creates: int, updates: int) -> int:
        """The fewest write calls this endpoint allows for one scope's records (benchmarks)."""
        ...


@dataclass(frozen=True)
class EntitySpec:
    """One synced entity, as data.

    ``map_record(record, refs)`` is pure but for ``refs``, which turns parents' ERP keys into
    Procore ids (raising ``Blocked`` when a parent is not in Procore yet). It returns the strict
    outgoing model plus warnings and scope; it raises ``InvalidRecord`` (or lets a pydantic
    ``ValidationError`` escape) for a record that cannot be sent.
    """

    name: str
    erp_table: str
    erp_model: type[BaseModel]
    procore_model: type[BaseModel]
    map_record: Callable[[Any, References], Mapped]
    key_field: str
    target: Target
    writer: Writer
    list_path: str
    list_scope: tuple[str, ...] = ("company_id",)
    parents: tuple[EntitySpec, ...] = ()
    origin_prefix: str = ""
    uses_origin_id: bool = True
    # Whether the write endpoint's items take ``id`` (commitment line syncs match by origin_id only).
    sends_id: bool = True
    # Procore locks some records once an integration created them (direct costs): never update.
    locked_once_synced: bool = False
    # Company-level ids a run needs before mapping (e.g. the standard cost code list): called
    # with the client and the run's context (company_id, settings), returns more context.
    prepare: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    # For reconcile: the money field summed per project and WBS code, and a custom reader where
    # Procore has no plain list of the records (budget lines are read through a budget view).
    money_field: str | None = None
    lister: Callable[[Any, dict[str, Any]], Iterable[dict[str, Any]]] | None = None
    # Entities whose records may be held (see HELD) get a second pass at the end of sync-all.
    revisit: bool = False
    cursor_field: str = "updated_at"
    batch_size: int = 1000
    title: str = ""
    # Where Procore shows a sent field under another name (reconcile): sent name → shown name.
    read_as: dict[str, str] = field(default_factory=dict)
    # The partial payload that deactivates a record (replace-mode uploads); None where Procore
    # has no such thing, and a record missing from an upload is only reported.
    deactivate: dict[str, Any] | None = None
    # What the writer matches Procore's records on, where there is no origin_id: two records
    # sharing it would become one Procore record, so they fail instead (``tasks.keys``).
    natural_key: NaturalKey | None = None
    # Procore's webhook resource names of what the entity writes (``procore-sync webhooks install``).
    webhook_resources: tuple[str, ...] = ()

    direction: ClassVar[Literal["erp_to_procore"]] = ERP_TO_PROCORE
    inbound: ClassVar[Literal[False]] = False

    @property
    def display_name(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    @property
    def erp_tables(self) -> tuple[str, ...]:
        return (self.erp_table,)

    @property
    def probe_path(self) -> str:
        return self.list_path

    def probe(self, client: ProcoreClient, context: dict[str, Any]) -> None:
        """The first item of the list reconcile reads (through ``lister`` where there is one)."""
        if self.lister is not None:
            next(iter(self.lister(client, context)), None)
            return
        context = context | (self.prepare(client, context) if self.prepare else {})
        scope = {name: context[name] for name in self.list_scope}
        next(iter(client.paginate(self.list_path.format(**context), scope, per_page=1)), None)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(parent.name for parent in self.parents)

    def origin_id(self, key: str) -> str:
        return f"{self.origin_prefix}{key}"

    def key_of_origin(self, origin_id: str) -> str:
        return origin_id.removeprefix(self.origin_prefix)


def ancestors(spec: EntitySpec) -> list[str]:
    """The entities whose state a record of ``spec`` may wait on: its parents, theirs, and so on
    (a line names its project too, which its contract's parents hold)."""
    found: dict[str, None] = {}
    stack = list(spec.parents)
    while stack:
        parent = stack.pop()
        if parent.name not in found:
            found[parent.name] = None
            stack.extend(parent.parents)
    return list(found)


# A warning that starts with this marks a record sent in an interim form (a contract kept in
# Draft until its lines land): every run reads it again until it is sent as the ERP has it.
HELD = "held back: "

# The message of a record whose update found it deleted in Procore (404/410 on its own id). It
# is not sent again unchanged; a run with ``recreate_deleted`` forgets its Procore id and creates it.
DELETED = "deleted in Procore: "

# The payload hash stored for a record deactivated because an upload no longer had it: any
# later upload that has it again differs, so it is updated (and so reactivated).
DEACTIVATED_HASH = "deactivated"


def partly_sent(payload_hash: str) -> str:
    """The hash stored for a payload Procore's update could carry only in part (Resource
    Planning's project update takes fewer fields than its create): not the hash of what was
    pushed, so never taken for it, yet the plan knows the payload and sends it again only once
    it changes (the warning naming the fields stays meanwhile)."""
    return f"partly sent:{payload_hash}"


class SyncOptions(BaseModel):
    """Parameters of every entity flow; Prefect renders this as the run form in the UI."""

    model_config = ConfigDict(extra="forbid")

    full_resync: bool = Field(
        default=False,
        description="Ignore the last synchronisation date and read every ERP record again. "
        "Records whose payload is unchanged still make no call.",
    )
    dry_run: bool = Field(
        default=False,
        description="Plan only: publish what would be created, updated, skipped, blocked or "
        "failed, and write nothing to Procore or to the sync state.",
    )
    erp_keys: list[str] = Field(
        default_factory=list,
        description="Sync only these ERP keys (a targeted resync); implies reading them "
        "whatever their last synchronisation date.",
    )
    projects: list[str] = Field(
        default_factory=list,
        description="Sync only the records of these ERP project numbers, whatever their last "
        "synchronisation date (a project resync). Company-wide records (suppliers, customers, "
        "employees) belong to no project, so such a run leaves them alone.",
    )
    force_deactivation: bool = Field(
        default=False,
        description="Replace-mode uploads: deactivate the records missing from the upload even "
        "when they are more than the safety share (max_deactivate_share) of the table.",
    )
    upload_file: str | None = Field(
        default=None,
        description="A one-time upload: read this entity's table from this CSV template (a path on "
        "the machine that runs the flow) instead of its usual source. Every row is read; the cursor "
        "stays and nothing is deactivated.",
    )
    recreate_deleted: bool = Field(
        default=False,
        description="Create again the records that were deleted in Procore (their last update "
        "answered 404 or 410): their old Procore id is forgotten. Takes effect in runs that ignore "
        "the cursor (resync-failed, a targeted run, a full resync).",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Records per sync call (Procore allows at most 1,000); default from settings.",
    )

    @property
    def ignores_cursor(self) -> bool:
        """The operator asks for the records whatever their last synchronisation: a full resync,
        a targeted run or a one-time upload. Such a run reads every row it covers and sends
        again even the records Procore refused unchanged."""
        return self.full_resync or self.targeted or self.upload_file is not None

    @property
    def targeted(self) -> bool:
        """A run limited to named keys or projects: it reads them whatever the cursor, and
        leaves the cursor where it was (records outside the target were not read)."""
        return bool(self.erp_keys or self.projects)

