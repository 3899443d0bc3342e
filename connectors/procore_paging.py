"""Reading list responses: JSON bodies, items, and what they say of the pages left.

Procore pages with ``page``/``per_page`` and reports ``Total``, ``Per-Page`` and a ``Link``
header (reference §3). ``list_page`` reads them into a ``connectors.paging.Page``, whose
loops decide when a list ends: by ``rel="next"`` when the endpoint sends links, otherwise by
counting pages of ``Per-Page`` against ``Total`` (some endpoints cap the page size below what we
asked for: ``/rest/v1.1/projects`` stops at 300).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests

from connectors.paging import Page
from connectors.procore_http import excerpt, sanitise_url
from procore_sync.errors import ConfigError, ServerError


def json_body(response: requests.Response, *, exact_numbers: bool = False) -> Any:
    """The decoded body, ``None`` when there is none; never a raw decoding error.

    ``exact_numbers`` decodes every JSON number with a fraction as a ``Decimal``, digit for digit:
    a float keeps about 16 digits, and money read from Procore goes on to the ERP exactly.
    """
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json(parse_float=Decimal) if exact_numbers else response.json()
    except ValueError:
        raise ServerError(
            f"Procore answered {response.status_code} with a body that is not JSON",
            url=sanitise_url(response.url or ""),
            status=response.status_code,
            body=excerpt(response.text or ""),
        ) from None


def page_items(response: requests.Response, *, exact_numbers: bool = False) -> list[dict[str, Any]]:
    body = json_body(response, exact_numbers=exact_numbers)
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        body = body["data"]  # REST v2 wraps collections in {"data": [...]}
    if body is None:
        return []
    if not isinstance(body, list):
        raise ConfigError(
            "this endpoint does not answer with a list, so it cannot be paginated",
            url=sanitise_url(response.url or ""),
        )
    return body


def list_page(response: requests.Response, per_page: int, *, exact_numbers: bool = False) -> Page:
    """One answer of a list endpoint, as ``connectors.paging`` reads it: an endpoint that sends
    links names its next page or none; the others state ``Total`` and ``Per-Page``, and one
    stating no total answers everything at once (a short page is its last)."""
    next_url = response.links.get("next", {}).get("url")
    return Page(
        page_items(response, exact_numbers=exact_numbers),
        next=next_url,
        last=bool(response.links) and not next_url,
        total=_int_or(response.headers.get("Total"), None),
        size=_int_or(response.headers.get("Per-Page"), per_page),
    )


def _int_or(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
