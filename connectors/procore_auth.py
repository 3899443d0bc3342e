"""OAuth client credentials for a Developer Managed Service Account (reference §1).

Procore issues a bearer token for 5400 s and no refresh token for this grant, so the token is
cached and a new one is requested shortly before it expires (judged by the injected clock, so
tests control time). The client secret and every token are registered with the redactor the
moment they are known. Token calls are not retried here: a transient failure surfaces as the
usual transient error inside the API call that needed the token, and the client's single retry
layer handles it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import requests

from connectors.procore_http import error_from_exception, error_from_response, excerpt
from connectors.procore_pacing import CallStats
from procore_sync.errors import AuthenticationFailed, ServerError, SyncError
from procore_sync.redact import redact, register_secret
from procore_sync.settings import Settings

log = logging.getLogger("connectors.procore")

DEFAULT_EXPIRES_IN_S = 5400.0
# Renew when less than this is left, or less than RENEW_FRACTION of the lifetime.
RENEW_MARGIN_S = 300.0
RENEW_FRACTION = 0.1


@functools.cache
def user_agent() -> str:
    try:
        version = metadata.version("procore-sync")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"procore-sync/{version}"


@dataclass
class _Token:
    value: str
    renew_at: float  # clock time after which we fetch a new one


class TokenSource:
    """Hands out a valid bearer token, fetching one when there is none or it is nearly spent."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session,
        stats: CallStats,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._session = session
        self._stats = stats
        self._clock = clock
        self._token: _Token | None = None
        register_secret(settings.client_secret_value)

    @property
    def url(self) -> str:
        return f"{self._settings.auth_base}/oauth/token"

    def token(self) -> str:
        if self._token is None or self._clock() >= self._token.renew_at:
            self._token = self._fetch()
        return self._token.value

    def invalidate(self) -> None:
        """Forget the cached token, e.g. after Procore answered 401 to it."""
        self._token = None

    def _fetch(self) -> _Token:
        self._stats.token_calls += 1
        response = self._post()
        if response.status_code in (400, 401):
            raise self._rejected(response)
        if not response.ok:
            raise error_from_response(response, "POST", self._clock())
        return self._parse(response)

    def _post(self) -> requests.Response:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret_value,
        }
        headers = {"Accept": "application/json", "User-Agent": user_agent()}
        try:
            return self._session.post(
                self.url, data=form, headers=headers, timeout=self._settings.timeout_s
            )
        except requests.RequestException as exc:
            raise error_from_exception(exc, "POST", self.url) from None

    def _rejected(self, response: requests.Response) -> SyncError:
        # Doorkeeper answers 401 invalid_client (or 400 for a malformed grant).
        environment = self._settings.environment.value
        return AuthenticationFailed(
            f"Procore refused the client credentials of client_id {self._settings.client_id} "
            f"for the {environment} environment; credentials never work across environments",
            url=self.url,
            status=response.status_code,
            body=excerpt(response.text or ""),
        )

    def _parse(self, response: requests.Response) -> _Token:
        try:
            payload = response.json()
            value = str(payload["access_token"])
            expires_in = float(payload.get("expires_in") or DEFAULT_EXPIRES_IN_S)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ServerError(
                "Procore's token endpoint answered without a usable access_token",
                url=self.url, status=response.status_code, body=excerpt(response.text or ""),
            ) from None
        register_secret(value)
        margin = max(RENEW_MARGIN_S, RENEW_FRACTION * expires_in)
        margin = min(margin, expires_in / 2)  # a short-lived token must still be used
        log.debug(redact(f"new Procore token, valid {expires_in:.0f} s"))
        return _Token(value, self._clock() + expires_in - margin)
