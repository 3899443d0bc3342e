"""One settings model, validated before any HTTP call.

Values come from the environment (prefix ``PROCORE_SYNC_``) or a ``.env`` file; see
``.env.example``. Secrets are ``SecretStr`` and are registered with the redactor as soon as the
settings load, so they are masked in every log line and error from then on.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BeforeValidator, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from procore_sync.redact import register_secret
from procore_sync.secrets import Secret, register_inline, reveal
from procore_sync.source_config import SourceConfig


class ProcoreEnvironment(str, Enum):
    production = "production"
    developer_sandbox = "developer-sandbox"
    monthly_sandbox = "monthly-sandbox"
    local = "local"


# (auth base, API base) per environment, as Procore's developer documentation lists them.
HOSTS: dict[ProcoreEnvironment, tuple[str, str]] = {
    ProcoreEnvironment.production: ("https://login.procore.com", "https://api.procore.com"),
    ProcoreEnvironment.developer_sandbox: (
        "https://login-sandbox.procore.com",
        "https://sandbox.procore.com",
    ),
    ProcoreEnvironment.monthly_sandbox: (
        "https://login-sandbox-monthly.procore.com",
        "https://api-monthly.procore.com",
    ),
}


def _one_or_many(value: object) -> object:
    """One cron string is shorthand for a list of one."""
    return [value] if isinstance(value, str) else value


# An entity's own schedules: one cron string or a non-empty list of them.
Crons = Annotated[list[str], BeforeValidator(_one_or_many), Field(min_length=1)]


# Where each path lives under home when its setting is unset.
_HOME_DEFAULTS: dict[str, Path] = {
    "state_path": Path("state.duckdb"),
    "erp_path": Path("erp") / "erp.duckdb",
    "export_dir": Path("export"),
}


class Settings(BaseSettings):
    """Every setting, each read from its own variable ``PROCORE_SYNC_<FIELD NAME>``.

    Sections, in order: Procore connection; quota and pacing; schedules; ERP reads; paths (home
    and the files under it, resolved once here); sources (where each ERP table comes from);
    webhooks; alerts. They are sections of one flat model rather than nested models so that
    every environment variable keeps the name operators' ``.env`` files already use.
    """

    model_config = SettingsConfigDict(
        env_prefix="PROCORE_SYNC_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- Procore connection: where, as whom, for which company, and how each call is made ---
    environment: ProcoreEnvironment = ProcoreEnvironment.local
    local_sandbox_url: str = "http://127.0.0.1:8765"
    client_id: str = "sandbox-client"
    # Inline, or by reference ({"env": ...} or {"prefect_secret": ...}, procore_sync/secrets.py):
    # a profile (profiles.toml) names its company's secret only by reference.
    client_secret: Secret = SecretStr("sandbox-secret")
    company_id: int = Field(default=1, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    batch_size: int = Field(default=1000, ge=1, le=1000)
    per_page: int = Field(default=1000, ge=1, le=2000)

    # The company's WBS pattern: segment ids of sub job, cost code and cost type (Procore →
    # Company Admin → Work Breakdown Structure; the local sandbox uses 1, 2 and 3).
    wbs_segment_sub_job: int = 1
    wbs_segment_cost_code: int = 2
    wbs_segment_cost_type: int = 3

    # --- Quota and pacing: the shared budget of calls, and how long a run may wait or last ---
    # Shared quota budget: Procore's two windows as two Prefect global concurrency limits, the
    # hour's named quota_limit_name and the spike window's "<quota_limit_name>-spike".
    quota_limit_name: str = "procore-api-quota"
    quota_per_hour: int = Field(default=3600, gt=0)
    quota_spike_per_10s: int = Field(default=25, gt=0)
    # The length of Procore's hourly window: an hour, shorter only against a local sandbox whose
    # hourly_window_s was shortened (tests, bench/quota.py).
    quota_hour_s: float = Field(default=3600.0, gt=0)
    quota_enabled: bool = True
    # Below this many calls left in Procore's reported window, pacing spreads the rest out.
    pacing_low_water: int = Field(default=20, ge=0)
    # A deployment run that would wait longer than this for Procore's quota is deferred instead:
    # it becomes AwaitingQuota, scheduled at the reset, and frees its process (shorter waits sleep).
    quota_defer_after_s: float = Field(default=120.0, ge=0)
    # The longest a run started by hand or by sync-all waits for a slot of the shared budget
    # before it fails (nothing would resume it); a deployment's own run is deferred instead.
    quota_wait_limit_s: float = Field(default=3600.0, gt=0)
    # The longest one entity's run may take; past it the run fails with a message and gives back
    # what it holds (its upload claim, its locks). Raise it for a first load of a large company.
    run_time_limit_s: float = Field(default=10800.0, gt=0)

    # --- Schedules of the deployments (cron, in schedule_timezone) ---
    schedule_cron: str = "0 7-19/3 * * 1-5"
    full_resync_cron: str = "0 2 * * 0"
    # The reconcile deployment (money per project and cost code), daily before the working day.
    reconcile_cron: str = "0 5 * * *"
    schedule_timezone: str = "UTC"
    # Entities that also run on their own schedules (active), besides sync-all: entity → cron(s).
    # Resource Planning is refreshed from the system of record several times a day, every day,
    # half an hour off sync-all. The deployments check names and crons (Prefect parses cron).
    schedules: dict[str, Crons] = Field(default_factory=lambda: {
        "resource_people": "30 6-18/3 * * *",
        "resource_projects": "30 6-18/3 * * *",
    })

    # --- ERP reads: how far each differential read reaches back, both ways; the budget tool ---
    # ERP → Procore: how far each differential read reaches back before the cursor. A row can be
    # committed after a run read its table yet stamped before the cursor that run left (a long
    # posting transaction, an export written out of order, ERP servers whose clocks differ); an
    # hour covers those by a wide margin, and what it reads again costs no call (the content
    # hash skips it), only its mapping. Later stragglers wait for the weekly full resync.
    erp_lookback_s: float = Field(default=3600.0, ge=0)

    # Procore → ERP (change orders, modified budget): how far each differential read reaches back
    # before the cursor (clock skew, records saved while the last read was answered), and which
    # budget tool the company uses: Budget Changes (Procore's default) or the legacy Budget
    # Modifications.
    inbound_overlap_s: float = Field(default=120.0, ge=0)
    budget_tool: Literal["budget_changes", "budget_modifications"] = "budget_changes"

    # --- Paths: home and the files under it ---
    # Unset, each path is derived from home once, here, so every reader gets a plain Path; home
    # is declared first because the derivation reads it.
    home: Path = Path(".procore-sync")
    state_path: Path = Field(default=None)
    # The state in a PostgreSQL database instead of the file at state_path, shared by workers on
    # several hosts: postgresql://user[:password]@host[:port]/database[?options=-csearch_path%3Dschema]
    # (libpq's URL: the password may instead come from PGPASSWORD or ~/.pgpass). Unset: the file.
    # `procore-sync state migrate --to URL` copies a state file there.
    state_url: SecretStr | None = None
    erp_path: Path = Field(default=None)
    # The ERP sink's tables (Procore's changes: change orders, modified budget) in a PostgreSQL
    # database instead of the ERP file at erp_path, for ERPs on a database server and workers on
    # several hosts: a postgresql:// URL as for state_url (its search_path names the schema).
    # Unset: the tables are in the file at erp_path.
    erp_sink_url: SecretStr | None = None
    # Where Procore's changes are also written as CSV files for the ERP to import (ERP sink).
    export_dir: Path = Field(default=None)

    # The profiles, one per Procore company this installation syncs (procore_sync/profiles.py);
    # no file, no profiles: these settings alone, one company.
    profiles_file: Path = Path("profiles.toml")

    # --- Sources: where each ERP table comes from (``connectors.sources``) ---
    # Table name or "default" → a source (duckdb, query, api, folder or sftp templates). Unnamed
    # tables: the ERP file above.
    sources: dict[str, SourceConfig] = Field(default_factory=dict)

    # --- Webhooks: Procore's hook, and the receiver its events reach ---
    # Procore webhooks (``procore-sync webhooks install``): one company hook in this namespace
    # (lowercase letters, digits, dashes; one per integration), sending events to this URL with
    # ``Authorization: Bearer <webhook_secret>``; the secret inline or by reference
    # ({"env": ...} or {"prefect_secret": ...}), the receiver checks it.
    webhook_namespace: str = Field(default="procore-sync", pattern=r"^[a-z0-9-]+$")
    webhook_url: str = "http://127.0.0.1:8766/procore/webhooks"
    webhook_secret: Secret | None = None
    # The receiver (`procore-sync webhooks serve`): the address it listens on (webhook_url is
    # where Procore reaches it, through a proxy in production); how long it gathers a burst of
    # events before it starts runs (one run per entity); the Procore application ids whose
    # changes are procore-sync's own writes (dropped, so nothing echoes), by default the OAuth
    # client id (set your application's id from Procore's Developer Portal).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8766, ge=0, le=65535)
    webhook_coalesce_s: float = Field(default=2.0, ge=0)
    webhook_application_ids: list[str] = Field(default_factory=list)
    # While the hook is healthy (webhooks health-check OK), sync-all reads a Procore → ERP entity
    # only once its last full read is this old (the safety net for deliveries Procore discarded
    # or never sent); 0 reads every entity in every sync-all, as without webhooks.
    webhook_sweep_s: float = Field(default=86400.0, ge=0)

    # --- Alerts (deployments/alerts.py, docs/alerts.md) ---
    # The Prefect notification block they are sent through, by name (``procore-sync alerts
    # set-webhook`` creates one); unset, no alert is created. A run waiting in AwaitingQuota longer than alert_quota_wait_s is reported: past
    # Procore's hourly window, something other than the window holds it (Prefect's minimum: 10 s).
    alert_block: str | None = None
    alert_quota_wait_s: float = Field(default=5400.0, ge=10)

    # The profile these settings were made for (``procore_sync.profiles``); None: the base settings.
    _profile: str | None = PrivateAttr(default=None)

    @field_validator("state_path", "erp_path", "export_dir", mode="before")
    @classmethod
    def _under_home_unless_set(cls, value: object, info: ValidationInfo) -> object:
        if value is not None:
            return value
        if "home" not in info.data:
            return Path()  # home was invalid: validation fails on home alone, not on its paths too
        return Path(info.data["home"]) / _HOME_DEFAULTS[info.field_name or ""]

    @field_validator("state_url", "erp_sink_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            instead = {"state_url": "the state file at state_path", "erp_sink_url": "the ERP file at erp_path"}
            raise ValueError(f"{info.field_name} is a postgresql:// URL; leave it unset for "
                             f"{instead[info.field_name or '']}")
        return value

    @model_validator(mode="after")
    def _register_secrets(self) -> "Settings":
        for url in (self.state_url, self.erp_sink_url):
            password = urlsplit(url.get_secret_value()).password if url is not None else None
            register_secret(password)
            register_secret(unquote(password) if password else None)
        register_inline(self.client_secret, self.webhook_secret)
        return self

    @property
    def profile(self) -> str | None:
        """The profile these settings were made for; None for the base settings."""
        return self._profile

    @property
    def client_secret_value(self) -> str:
        """The OAuth client secret, its reference resolved (registered with the redactor)."""
        return reveal(self.client_secret) or ""

    @property
    def own_application_ids(self) -> set[str]:
        """The Procore applications whose webhook events are procore-sync's own writes."""
        return set(self.webhook_application_ids or [self.client_id])

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded templates are kept: pending (taken, not yet synced) and current."""
        return self.home / "uploads"

    @property
    def auth_base(self) -> str:
        if self.environment is ProcoreEnvironment.local:
            return self.local_sandbox_url.rstrip("/")
        return HOSTS[self.environment][0]

    @property
    def api_base(self) -> str:
        if self.environment is ProcoreEnvironment.local:
            return self.local_sandbox_url.rstrip("/")
        return HOSTS[self.environment][1]
