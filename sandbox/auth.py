"""OAuth client credentials, as Procore's Doorkeeper server answers them.

One client (``client_id`` / ``client_secret`` from the config) may fetch bearer tokens; each is
random and lives ``token_ttl_s`` seconds by the injected clock. There is no refresh token for this
grant, so a client must simply ask again before expiry, exactly as against Procore.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from enum import Enum
from typing import Any

from sandbox.config import SandboxConfig


class TokenState(Enum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


class OAuthError(Exception):
    """An RFC 6749 error answer: ``{"error": code, "error_description": text}``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": code, "error_description": description}


class TokenRegistry:
    def __init__(self, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer a token request or raise ``OAuthError``."""
        for name in ("grant_type", "client_id", "client_secret"):
            if not params.get(name):
                raise OAuthError(400, "invalid_request", f"The request is missing the {name} parameter.")
        if params["grant_type"] != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "The sandbox supports only client_credentials.")
        if not self._credentials_match(str(params["client_id"]), str(params["client_secret"])):
            raise OAuthError(401, "invalid_client", "Client authentication failed due to unknown client.")
        return self._issue()

    def check(self, authorization: str | None) -> TokenState:
        """State of the token in an ``Authorization`` header value."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return TokenState.MISSING
        expires_at = self._expiry.get(token.strip())
        if expires_at is None:
            return TokenState.UNKNOWN
        return TokenState.VALID if self._clock() < expires_at else TokenState.EXPIRED

    def issued(self) -> list[str]:
        """Every token still remembered (tests scan their output for them)."""
        return list(self._expiry)

    def _credentials_match(self, client_id: str, client_secret: str) -> bool:
        # Constant-time comparison, out of habit: this is how secrets are compared.
        id_ok = secrets.compare_digest(client_id.encode(), self._config.client_id.encode())
        secret_ok = secrets.compare_digest(client_secret.encode(), self._config.client_secret.encode())
        return id_ok and secret_ok

    def _issue(self) -> dict[str, Any]:
        now = self._clock()
        self._forget_expired(now)
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + self._config.token_ttl_s
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": math.ceil(self._config.token_ttl_s),
            "created_at": int(now),
        }

    def _forget_expired(self, now: float) -> None:
        # Keep expired tokens for one more lifetime, so a late caller hears "expired", not "unknown".
        cutoff = now - self._config.token_ttl_s
        for token in [token for token, expires_at in self._expiry.items() if expires_at <= cutoff]:
            del self._expiry[token]
