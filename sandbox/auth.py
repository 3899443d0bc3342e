"""OAuth client credentials, as Procore's Doorkeeper server answers them.

The configured client (``client_id`` / ``client_secret``) and the ``other_clients`` may fetch
bearer tokens; each is random and lives ``token_ttl_s`` seconds by the injected clock. There is no
refresh token for this grant, so a client must simply ask again before expiry, exactly as against
Procore. A token remembers whose it is (``Actor``: the application and its user), which the gate
puts in ``CURRENT_ACTOR`` for the request, so a webhook event names who made the change.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sandbox.config import SandboxConfig


class TokenState(Enum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Actor:
    """Who a request acts as: its OAuth application (None: Procore's own UI) and user."""

    application_id: int | None
    user_id: int


# The actor of the request being served (set by the gate once the token is checked).
CURRENT_ACTOR: ContextVar[Actor | None] = ContextVar("sandbox_actor", default=None)


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
        self._actors: dict[str, Actor] = {}

    def grant(self, params: dict[str, Any]) -> dict[str, Any]:
        """Answer a token request or raise ``OAuthError``."""
        for name in ("grant_type", "client_id", "client_secret"):
            if not params.get(name):
                raise OAuthError(400, "invalid_request", f"The request is missing the {name} parameter.")
        if params["grant_type"] != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "The sandbox supports only client_credentials.")
        actor = self._actor_of_client(str(params["client_id"]), str(params["client_secret"]))
        if actor is None:
            raise OAuthError(401, "invalid_client", "Client authentication failed due to unknown client.")
        return self._issue(actor)

    def check(self, authorization: str | None) -> TokenState:
        """State of the token in an ``Authorization`` header value."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return TokenState.MISSING
        expires_at = self._expiry.get(token.strip())
        if expires_at is None:
            return TokenState.UNKNOWN
        return TokenState.VALID if self._clock() < expires_at else TokenState.EXPIRED

    def actor(self, authorization: str | None) -> Actor | None:
        """Whose token an ``Authorization`` header value carries (None: no known token)."""
        return self._actors.get((authorization or "").partition(" ")[2].strip())

    def issued(self) -> list[str]:
        """Every token still remembered (tests scan their output for them)."""
        return list(self._expiry)

    def _actor_of_client(self, client_id: str, client_secret: str) -> Actor | None:
        config = self._config
        clients = [(config.client_id, config.client_secret, Actor(config.application_id, config.user_id))]
        clients += [(c.client_id, c.client_secret, Actor(c.application_id, c.user_id)) for c in config.other_clients]
        for known_id, known_secret, actor in clients:
            if _credentials_match(client_id, client_secret, known_id, known_secret):
                return actor
        return None

    def _issue(self, actor: Actor) -> dict[str, Any]:
        now = self._clock()
        self._forget_expired(now)
        token = secrets.token_urlsafe(32)
        self._expiry[token] = now + self._config.token_ttl_s
        self._actors[token] = actor
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
            self._actors.pop(token, None)


def _credentials_match(client_id: str, client_secret: str, known_id: str, known_secret: str) -> bool:
    # Constant-time comparison, out of habit: this is how secrets are compared.
    id_ok = secrets.compare_digest(client_id.encode(), known_id.encode())
    secret_ok = secrets.compare_digest(client_secret.encode(), known_secret.encode())
    return id_ok and secret_ok
