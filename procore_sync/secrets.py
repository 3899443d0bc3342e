"""Secrets by reference: a setting that holds a secret takes the value itself, or where to find it.

Source settings (``PROCORE_SYNC_SOURCES``) are configuration an integrator keeps in git; the
passwords and tokens in them should not be. So each secret field takes one of:

- the value (a JSON string), kept as a ``SecretStr``;
- ``{"env": "HR_SFTP_PASSWORD"}``: an environment variable of the process that runs the flow;
- ``{"prefect_secret": "hr-sftp-password"}``: a Prefect Secret block, loaded by name at run time
  (created in the UI under Blocks, or with ``Secret(value=...).save(name)``).

A reference is resolved when the connector first needs it (``reveal``), never at settings load,
and the value is registered with the redactor at once, so it shows in no log line or message.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from procore_sync.errors import ConfigError
from procore_sync.redact import register_secret


class SecretRef(BaseModel):
    """Where a secret is: exactly one of ``env`` and ``prefect_secret``."""

    model_config = ConfigDict(extra="forbid")

    env: str | None = None
    prefect_secret: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        if (self.env is None) == (self.prefect_secret is None):
            raise ValueError('a secret reference names exactly one of "env" and "prefect_secret"')
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"Prefect Secret block {self.prefect_secret!r}"

    def resolve(self) -> str:
        value = os.environ.get(self.env) if self.env else _prefect_secret(str(self.prefect_secret))
        if not value:
            raise ConfigError(f"the secret in {self.describe()} is not set; set it where the flows run")
        return value


Secret = SecretStr | SecretRef


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret as SecretBlock  # Prefect only where a block is named

    try:
        value = SecretBlock.load(name).get()
    except ValueError as exc:  # Prefect's answer for a block that does not exist
        raise ConfigError(f"there is no Prefect Secret block named {name!r}; create it (UI: Blocks → Secret)") from exc
    return value if isinstance(value, str) else str(value)


def reveal(secret: Secret | None) -> str | None:
    """The secret's value, registered with the redactor; None when there is none."""
    if secret is None:
        return None
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret.resolve()
    register_secret(value)
    return value


def register_inline(*secrets: Secret | None) -> None:
    """Register the values given inline as soon as the settings load (references wait for use)."""
    for secret in secrets:
        if isinstance(secret, SecretStr):
            register_secret(secret.get_secret_value())
