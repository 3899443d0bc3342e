"""What ``PROCORE_SYNC_SOURCES`` may say: each source's configuration, as the settings read it.

Plain models of the base layer: the settings validate a source from them without importing the
connectors that read it (``connectors.sources`` builds a source from its configuration; the
drops, the API and the query sources read by it). A ``kind`` tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from procore_sync.secrets import Secret, register_inline

# The column a table's cursor reads: the time a record last changed in the ERP.
CURSOR_COLUMN = "updated_at"


class FolderDropConfig(BaseModel):
    """Templates uploaded into a local (or mounted) folder."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder"]
    folder: Path
    archive_folder: str = "archive"
    ready: Literal["marker", "rename"] = "marker"


class SftpDropConfig(BaseModel):
    """Templates uploaded to a folder on an SFTP server."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sftp"]
    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    username: str
    # Each secret: the value, {"env": NAME} or {"prefect_secret": BLOCK} (procore_sync.secrets).
    password: Secret | None = None
    private_key_path: Path | None = None
    private_key_passphrase: Secret | None = None
    known_hosts: Path
    folder: str = "."
    archive_folder: str = "archive"
    ready: Literal["marker", "rename"] = "marker"
    # The limit of every wait on the server: connect, handshake, login and each SFTP request.
    timeout_s: float = Field(default=30.0, gt=0)
    keepalive_s: int = Field(default=15, ge=0)

    @model_validator(mode="after")
    def _one_way_in(self) -> "SftpDropConfig":
        if (self.password is None) == (self.private_key_path is None):
            raise ValueError("give exactly one of password and private_key_path")
        register_inline(self.password, self.private_key_passphrase)
        return self


class ApiSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["api"]
    url: str
    paths: dict[str, str]
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    # The value, {"env": NAME} or {"prefect_secret": BLOCK} (procore_sync.secrets).
    token: Secret | None = None
    paging: Literal["page", "offset", "cursor", "none"] = "page"
    page_param: str = "page"
    first_page: int = 1
    size_param: str = "per_page"
    page_size: int = Field(default=100, gt=0)
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    record_path: str = ""
    # Where the server states how many records the list has (page and offset paging), if it does.
    total_path: str = ""
    total_header: str | None = None
    order_params: dict[str, str] = Field(default_factory=dict)
    cursor_field: str = CURSOR_COLUMN
    since_param: str | None = None
    # The limit of one answer, from connecting to its last byte (module docstring).
    timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=10)

    @model_validator(mode="after")
    def _register_token(self) -> "ApiSourceConfig":
        register_inline(self.token)
        return self


class QuerySourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["query"]
    # The DuckDB file the queries run in (read-only); None runs them in memory (files only).
    path: Path | None = None
    # More databases, read-only, by the name the queries use for them.
    attach: dict[str, Path] = Field(default_factory=dict)
    # Table (template) name → one SELECT giving that table's columns.
    queries: dict[str, str]
    # The limit of one query, after which it is interrupted (module docstring).
    timeout_s: float = Field(default=300.0, gt=0)


class DuckDbSourceConfig(BaseModel):
    """Tables of a DuckDB file; ``path`` defaults to ``PROCORE_SYNC_ERP_PATH``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["duckdb"]
    path: Path | None = None
    # Table name → the file's table or view, where they differ.
    tables: dict[str, str] = Field(default_factory=dict)


class _Replace(BaseModel):
    replace: bool = Field(
        default=True,
        description="An upload is the whole truth for its table: records it no longer has are "
        "deactivated in Procore (never deleted).",
    )
    max_deactivate_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Refuse an upload that would deactivate more than this share of the "
        "table's synced records, unless the run is forced (force_deactivation).",
    )


class FolderTemplatesConfig(FolderDropConfig, _Replace):
    pass


class SftpTemplatesConfig(SftpDropConfig, _Replace):
    pass


SourceConfig = Annotated[
    DuckDbSourceConfig | QuerySourceConfig | ApiSourceConfig | FolderTemplatesConfig | SftpTemplatesConfig,
    Field(discriminator="kind"),
]
