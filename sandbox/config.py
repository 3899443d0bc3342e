"""Settings of one sandbox instance.

One model holds everything a test or the demo may want to turn: the single company the app is
"installed" in, the OAuth clients, the two quota windows, the fault switches, the webhook
deliveries' manners, the budget tool and the optional data file. Defaults mirror Procore's documented production figures, so a sandbox
started without arguments behaves like the real thing; tests shrink the windows (say 50 calls
per 20 s) and drive time with a manual clock instead of sleeping.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class OAuthClient(BaseModel):
    """Another OAuth client of the company: who its tokens' changes are made by (webhook events'
    ``metadata``). ``application_id`` None is a person working in Procore's web or mobile app."""

    model_config = ConfigDict(extra="forbid")

    client_id: str
    client_secret: str
    application_id: int | None
    user_id: int


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_id: int = 1
    company_name: str = "Sandbox Construction Co"
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_ttl_s: float = Field(default=5400, gt=0)
    # The app behind client_id and its service account (DMSA) user: the source_application_id and
    # source_user_id of the webhook events its changes cause.
    application_id: int = 31_337
    user_id: int = 5_447
    # The field: a person editing in Procore's UI (no application), with their own credentials.
    other_clients: list[OAuthClient] = Field(default_factory=lambda: [
        OAuthClient(client_id="sandbox-field", client_secret="sandbox-field-secret", application_id=None, user_id=7_001),
    ])

    # Procore's historical default is 3,600 calls per hour per company, plus 25 per 10 s.
    hourly_limit: int = Field(default=3600, ge=1)
    hourly_window_s: float = Field(default=3600, gt=0)
    spike_limit: int = Field(default=25, ge=1)
    spike_window_s: float = Field(default=10, gt=0)

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0)
    lost_response_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sync_hold_ms: int = Field(default=0, ge=0)
    rate_limit_burst_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_limit_burst_s: int = Field(default=2, ge=1)
    latency_spike_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_spike_ms: int = Field(default=0, ge=0)
    seed: int = 0

    # Webhook deliveries, as Procore makes them (``sandbox.webhooks``): the answer timeout, and at
    # least once and not in order: the share of events sent twice and how many queued events
    # the next delivery is drawn from (1: in order). Both drawn from ``seed``.
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_duplicate_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    webhook_reorder_window: int = Field(default=4, ge=1)

    data_file: Path | None = None
    validate_requests: bool = True
    # The company still on the legacy Budget Modifications tool (True) or on Budget Changes,
    # Procore's default for new companies (False: budget modification writes answer 405).
    legacy_budget_tool: bool = False
