"""Turning HTTP outcomes into errors of the one error tree, with context and without secrets.

Every failed response or ``requests`` exception becomes a ``SyncError`` subclass chosen by
``procore_sync.errors.error_for_status`` (or ``ConnectionLost`` for timeouts and dropped
connections), carrying the sanitised URL, the status, a short body excerpt and Procore's
``x-request-id`` (which Procore support asks for). Raw ``requests`` exceptions never leave the
client: their text may hold URLs, and callers should only ever need to handle our tree.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from procore_sync.errors import (
    ConfigError,
    ConnectionLost,
    RateLimited,
    SyncError,
    error_for_status,
)
from procore_sync.redact import MASK, redact

BODY_EXCERPT = 300
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Query parameters whose values must never be shown, whatever their value looks like.
SECRET_PARAMS = frozenset(
    {"client_secret", "access_token", "refresh_token", "token", "code", "password", "api_key"}
)
# requests failures that mean "our configuration is wrong", not "the network hiccupped".
_CONFIG_FAILURES = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema)


def sanitise_url(url: str) -> str:
    """The URL with secret query values masked and known secrets redacted."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
        # Re-encode only when needed: the original query reads better in a log line.
        masked = [(n, MASK if n.lower() in SECRET_PARAMS else v) for n, v in pairs]
        parts = parts._replace(query=urlencode(masked, safe="[]*:,"))
    return redact(urlunsplit(parts))


def sanitise_path(url: str) -> str:
    """Path and query only: what a log line needs, without repeating the host."""
    parts = urlsplit(sanitise_url(url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def url_path(url: str) -> str:
    return urlsplit(url).path


def is_write(method: str, url: str) -> bool:
    return method.upper() in WRITE_METHODS and url_path(url).startswith("/rest/")


def is_plain_create(method: str, url: str) -> bool:
    """A POST that is not a sync call: resending it after an unclear outcome may duplicate.

    Sync calls are upserts keyed by ``origin_id`` (or ``id``), so sending one twice converges on
    the same records; PATCH/PUT/DELETE are idempotent by definition.
    """
    return method.upper() == "POST" and not url_path(url).rstrip("/").endswith("/sync")


def excerpt(text: str) -> str:
    return " ".join(text.split())[:BODY_EXCERPT]


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` in seconds; Procore sends seconds, HTTP also allows a date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def answer_time(headers: Mapping[str, str]) -> datetime | None:
    """Procore's clock when it answered (the HTTP ``Date`` header, whole seconds, UTC)."""
    value = headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


def server_retry_at(response: requests.Response, now: float) -> float | None:
    """When the server said we may try again (unix seconds), if it said so.

    ``Retry-After`` wins (429 and 503 both use it); for a 429 without it, the quota window's
    ``X-Rate-Limit-Reset`` is when calls are allowed again.
    """
    delay = retry_after_s(response.headers, now)
    if delay is not None:
        return now + delay
    if response.status_code == 429:
        try:
            return float(response.headers["X-Rate-Limit-Reset"])
        except (KeyError, ValueError):
            return None
    return None


def error_from_response(response: requests.Response, method: str, now: float) -> SyncError:
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    message = f"Procore answered {status} {response.reason or ''}".rstrip() + f" to {method}"
    if request_id:
        message += f" (x-request-id {request_id})"
    context = {"url": sanitise_url(response.url or ""), "status": status,
               "body": excerpt(response.text or "")}
    cls = error_for_status(status)
    if cls is RateLimited:
        retry_at = server_retry_at(response, now)
        reset_at = datetime.fromtimestamp(retry_at, timezone.utc) if retry_at else None
        return RateLimited(message, reset_at=reset_at, **context)
    return cls(message, **context)  # type: ignore[arg-type]


def error_from_exception(
    exc: requests.RequestException, method: str, url: str, *, create: bool = False
) -> SyncError:
    detail = f"{type(exc).__name__}: {redact(str(exc))}"[:BODY_EXCERPT]
    if isinstance(exc, _CONFIG_FAILURES):
        return ConfigError(f"cannot send {method}: invalid Procore URL ({detail})",
                           url=sanitise_url(url))
    if create:
        message = (f"{method} lost its connection ({detail}); the record may have been created: "
                   "look it up by its key (origin_id) before creating it again")
    else:
        message = f"{method} lost its connection ({detail}); it is safe to send again"
    return ConnectionLost(message, url=sanitise_url(url))


def json_request_body(value: Any) -> bytes:
    """A request body as JSON, every ``Decimal`` written as the exact JSON number it is.

    Procore's schemas type amounts as numbers, and JSON numbers may carry any number of digits;
    ``requests``' ``json=`` goes through the stdlib encoder, which knows only ``float`` (about
    16 digits), so money is written here instead, the rest as ``requests`` would write it.
    """
    return _json_text(value).encode("utf-8")


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    return json.dumps(value, allow_nan=False)
