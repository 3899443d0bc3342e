"""OAuth, companies and vendors: the operations the sandbox served first, one handler each.

The other resources have their own route modules (``routes_company``, ``routes_project``,
``routes_contracts``, ``routes_direct_costs``). Every path is an operation in
``sandbox/openapi/catalog.json`` (a contract test enforces it). Authentication, the company
header, quotas and faults are handled before a request gets here, by ``sandbox.gate``; handlers
only check the company named in the query or body, call the vendor logic and shape the answer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from sandbox import vendors
from sandbox.api_errors import ApiError, missing_param, not_found, read_json
from sandbox.auth import OAuthError
from sandbox.listing import apply_filters, clamp_page, paginate
from sandbox.scopes import MAX_SYNC_ITEMS, company_id
from sandbox.state import SandboxState, state_of

router = APIRouter()


def _company(state: SandboxState, value: Any) -> int:
    """The company a query or body names; it must be the one the app is installed in."""
    return company_id(state, value)


def _vendor_attrs(body: dict[str, Any]) -> dict[str, Any]:
    attrs = body.get("vendor")
    if not isinstance(attrs, dict) or not attrs:
        raise missing_param("vendor")
    return attrs


async def _token_params(request: Request) -> dict[str, Any]:
    # Doorkeeper reads params from the query and from a form or JSON body alike.
    params: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        params.update(body if isinstance(body, dict) else {})
    else:
        params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return params


@router.post("/oauth/token")
async def oauth_token(request: Request) -> Response:
    try:
        token = state_of(request).tokens.grant(await _token_params(request))
    except OAuthError as error:
        return JSONResponse(error.body, status_code=error.status)
    return JSONResponse(token, headers={"Cache-Control": "no-store"})


@router.get("/rest/v1.0/companies")
async def list_companies(request: Request, page: int | None = None, per_page: int | None = None) -> Response:
    page, per_page = clamp_page(page, per_page)
    items, headers = paginate([state_of(request).company()], page, per_page, request.url)
    return JSONResponse(items, headers=headers)


@router.get("/rest/v1.0/vendors")
async def list_vendors(
    request: Request, company_id: str | None = None, page: int | None = None, per_page: int | None = None
) -> Response:
    state = state_of(request)
    company = _company(state, company_id)
    query = request.query_params
    records = apply_filters(state.store.vendors(company), query, query.getlist("filters[id][]"))
    page, per_page = clamp_page(page, per_page)
    items, headers = paginate(records, page, per_page, request.url)
    return JSONResponse([vendors.represent(record) for record in items], headers=headers)


# Declared before "/vendors/{id}" so the literal path wins, as it does in Procore's routing.
@router.patch("/rest/v1.0/vendors/sync")
async def sync_vendors(request: Request) -> Response:
    state = state_of(request)
    body = await read_json(request)
    company = _company(state, body.get("company_id", request.query_params.get("company_id")))
    updates = body.get("updates")
    if not isinstance(updates, list):
        raise missing_param("updates")
    if len(updates) > MAX_SYNC_ITEMS:
        raise ApiError(413, {"updates": [f"is too long (maximum is {MAX_SYNC_ITEMS} items)"]})
    result = vendors.sync(state.store, company, updates)
    state.store.commit()
    return JSONResponse(result)


@router.get("/rest/v1.0/vendors/{id}")
async def show_vendor(
    request: Request, vendor_id: int = Path(alias="id"), company_id: str | None = None
) -> Response:
    state = state_of(request)
    vendor = state.store.vendor(_company(state, company_id), vendor_id)
    if vendor is None:
        raise not_found("Vendor", vendor_id)
    return JSONResponse(vendors.represent(vendor))


@router.post("/rest/v1.0/vendors")
async def create_vendor(request: Request) -> Response:
    state = state_of(request)
    body = await read_json(request)
    company = _company(state, body.get("company_id"))
    vendor, errors = vendors.create(state.store, company, _vendor_attrs(body))
    if vendor is None:
        return JSONResponse({"errors": errors}, status_code=422)
    state.store.commit()
    return JSONResponse(vendor, status_code=201)


@router.patch("/rest/v1.0/vendors/{id}")
async def update_vendor(request: Request, vendor_id: int = Path(alias="id")) -> Response:
    state = state_of(request)
    body = await read_json(request)
    company = _company(state, body.get("company_id", request.query_params.get("company_id")))
    if state.store.vendor(company, vendor_id) is None:
        raise not_found("Vendor", vendor_id)
    vendor, errors = vendors.update(state.store, company, vendor_id, _vendor_attrs(body))
    if vendor is None:
        return JSONResponse({"errors": errors}, status_code=422)
    state.store.commit()
    return JSONResponse(vendor)
