"""What every route does around the resource logic: find the scope, read the batch, list a page.

Procore names a request's scope in different places per endpoint (``company_id`` in the query,
the body or the path; ``project_id`` likewise), so each route says where it looks and these
helpers turn the value into a ``records.Context`` or a Procore-shaped refusal:

- a missing scope parameter is 400 ("param is missing or the value is empty: project_id");
- a company other than the one the app is installed in is 403, as for vendors;
- a project the company does not have is 404 ("Couldn't find Project with 'id'=...") for the
  whole request, before any item is looked at.

``batch`` enforces the sync limit (1,000 items, 413 above) and ``listed`` serves one page of a
list with the endpoint's own filters and ``Total`` / ``Per-Page`` / ``Link`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox import records
from sandbox.answers import JSONResponse
from sandbox.api_errors import NOT_INSTALLED, ApiError, missing_param, not_found
from sandbox.listing import MAX_PER_PAGE, SEARCH_FIELDS, apply_filters, clamp_page, paginate
from sandbox.records import Context, Resource, find
from sandbox.state import SandboxState
from sandbox.store import Record
from sandbox.validation import Errors
from sandbox.views import View

# Procore's sync descriptions: "Attributes for a maximum of 1000 <records> may be passed with each
# call." It documents no status for going over; the sandbox answers 413 Payload Too Large, the
# status Procore documents for oversized line-item syncs, so a client learns to split the batch.
MAX_SYNC_ITEMS = 1000


def as_int(name: str, value: Any) -> int:
    if value is None or value == "":
        raise missing_param(name)
    if isinstance(value, bool):
        raise ApiError(400, {name: ["is invalid"]})
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, {name: ["is invalid"]}) from None


def company_id(state: SandboxState, value: Any) -> int:
    """The company a query, body or path names; it must be the one the app is installed in."""
    company = as_int("company_id", value)
    if company != state.config.company_id:
        raise ApiError(403, NOT_INSTALLED)
    return company


def company_context(state: SandboxState, value: Any, fixed: Mapping[str, Any] | None = None) -> Context:
    company = company_id(state, value)
    return Context(state.store, company, company, dict(fixed or {}))


def project_context(state: SandboxState, value: Any, fixed: Mapping[str, Any] | None = None) -> Context:
    """The project a request names, in the company of the ``Procore-Company-Id`` header."""
    project_id = as_int("project_id", value)
    company = state.config.company_id
    if state.store.project(company, project_id) is None:
        raise not_found("Project", project_id)
    return Context(state.store, company, project_id, dict(fixed or {}))


def within(context: Context, fixed: Mapping[str, Any]) -> Context:
    return Context(context.store, context.company_id, context.scope_id, {**context.fixed, **fixed})


def found(resource: Resource, context: Context, record_id: int) -> Record:
    record = find(resource, context, record_id)
    if record is None:
        raise not_found(resource.label, record_id)
    return record


def batch(body: Mapping[str, Any], key: str = "updates") -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list):
        raise missing_param(key)
    if len(items) > MAX_SYNC_ITEMS:
        raise ApiError(413, {key: [f"is too long (maximum is {MAX_SYNC_ITEMS} items)"]})
    return items


def _page_number(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    return None if value in (None, "") else as_int(name, value)


def listed(
    request: Request,
    context: Context,
    kind: str,
    view: View,
    *,
    filters: tuple[str, ...] = (),
    exact: tuple[str, ...] = (),
    search_fields: tuple[str, ...] = SEARCH_FIELDS,
    max_per_page: int = MAX_PER_PAGE,
    rows: list[Record] | None = None,
) -> Response:
    """One page of ``rows`` (default: every record of ``kind`` in the scope, narrowed by the
    context's fixed attributes) passing the endpoint's ``filters`` (among ``updated_at``,
    ``created_at``, ``origin_id``, ``search`` and ``id``) and ``exact`` filters."""
    if rows is None:
        rows = context.store.records(kind, context.scope_id)
        rows = [row for row in rows if all(row.get(k) == v for k, v in context.fixed.items())]
    query = request.query_params
    ids = query.getlist("filters[id][]") + query.getlist("filters[id]") if "id" in filters else []
    rows = apply_filters(rows, query, ids, supported=filters, exact=exact, search_fields=search_fields)
    page, per_page = clamp_page(
        _page_number(request, "page"), _page_number(request, "per_page"), max_per_page
    )
    items, headers = paginate(rows, page, per_page, request.url)
    return JSONResponse([view(context, record) for record in items], headers=headers)


def path_id(request: Request, name: str) -> int:
    """A path parameter that must be an id; anything else names no record (404)."""
    try:
        return int(request.path_params[name])
    except (KeyError, ValueError):
        raise ApiError(404, "Not Found") from None


def synced(resource: Resource, context: Context, body: Mapping[str, Any], view: View) -> Response:
    """Run the sync action on ``body["updates"]`` and commit; always 200."""
    result = records.sync(resource, context, batch(body), lambda record: view(context, record))
    context.store.commit()
    return JSONResponse(result)


def saved(record: Record | None, errors: Errors, context: Context, view: View, status: int) -> Response:
    """The answer of a single-record create or update: the record, or 422 with its errors."""
    if record is None:
        return JSONResponse({"errors": errors}, status_code=422)
    context.store.commit()
    return JSONResponse(view(context, record), status_code=status)
