"""What an entity declares, and the options every entity flow takes.

An entity module in ``flows/`` builds one ``EntitySpec``: its models, its pure mapping function
and where it goes in Procore. The engine (``tasks.engine``) needs nothing else to extract, map,
plan, load, record and report it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Mapped(BaseModel):
    """The result of mapping one ERP record: the outgoing payload and the operator's warnings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    payload: BaseModel
    warnings: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class EntitySpec:
    """One synced entity, as data.

    ``map_record`` is pure: it receives the validated ERP model and returns the strict outgoing
    Procore model plus warnings; it raises ``procore_sync.errors.InvalidRecord`` (or lets a
    pydantic ``ValidationError`` escape) for a record that cannot be sent.
    """

    name: str
    erp_table: str
    erp_model: type[BaseModel]
    procore_model: type[BaseModel]
    map_record: Callable[[BaseModel], Mapped]
    key_field: str
    sync_path: str
    list_path: str
    scope: Literal["company"] = "company"
    cursor_field: str = "updated_at"
    batch_size: int = 1000
    depends_on: tuple[str, ...] = ()
    direction: Literal["erp_to_procore"] = "erp_to_procore"
    title: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()


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
        description="Plan only: publish what would be created, updated, skipped or failed, "
        "and write nothing to Procore or to the sync state.",
    )
    erp_keys: list[str] = Field(
        default_factory=list,
        description="Sync only these ERP keys (a targeted resync); implies reading them "
        "whatever their last synchronisation date.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Records per sync call (Procore allows at most 1,000); default from settings.",
    )
