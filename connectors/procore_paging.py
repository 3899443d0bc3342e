"""Reading list responses: JSON bodies, items, and whether there is another page.

Procore pages with ``page``/``per_page`` and reports ``Total``, ``Per-Page`` and a ``Link``
header (reference §3). The client follows ``rel="next"`` when the endpoint sends links, and
otherwise counts pages against ``Total``. ``Per-Page`` matters: some endpoints cap the page size
below what we asked for (``/rest/v1.1/projects`` stops at 300), and counting with our own
number would stop early and silently drop records.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests

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


def next_link(response: requests.Response) -> str | None:
    return response.links.get("next", {}).get("url")


def is_last_page(
    response: requests.Response, items: list[dict[str, Any]], page: int, per_page: int
) -> bool:
    """Whether to stop, for a response without a ``rel="next"`` link."""
    if response.links or not items:
        return True  # the endpoint pages by Link and sent no "next": this was the last page
    real_size = _int_or(response.headers.get("Per-Page"), per_page)
    total = _int_or(response.headers.get("Total"), None)
    if total is None:
        # No Total and no Link: an unpaginated endpoint returns everything at once, and a
        # short page is the last one. Looping on would fetch the same list forever.
        return len(items) < real_size
    return page * real_size >= total


def _int_or(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
