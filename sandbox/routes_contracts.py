"""Prime contracts, subcontracts (work order contracts) and purchase orders, with their lines.

Prime contracts have no header sync in Procore: one ``POST /rest/v1.0/prime_contract``
(singular) per contract, ``PATCH /rest/v1.0/prime_contract/{id}`` to change one, both answering
422 with Rails-style errors. Subcontracts and purchase orders have the same four operations
each (header sync with ``project_id`` in the body, list, line sync, line list), built by
``_commitment_routes``. Line syncs take the contract in the path and the project in the query;
a contract that is not in the project is 404 for the whole request.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from sandbox import records, views
from sandbox.api_errors import missing_param, read_json
from sandbox.records import Resource
from sandbox.resources import (
    PRIME_CONTRACT_LINE_ITEMS,
    PRIME_CONTRACTS,
    PURCHASE_ORDER_CONTRACT_LINE_ITEMS,
    PURCHASE_ORDER_CONTRACTS,
    WORK_ORDER_CONTRACT_LINE_ITEMS,
    WORK_ORDER_CONTRACTS,
)
from sandbox.scopes import found, listed, path_id, project_context, saved, synced, within
from sandbox.state import state_of
from sandbox.views import View

router = APIRouter()
LINE_FILTERS = ("updated_at", "created_at", "id")
LINE_EXACT = ("cost_code_id", "line_item_type_id")


def _prime_attrs(body: dict[str, object]) -> dict[str, object]:
    attrs = body.get("prime_contract")
    if not isinstance(attrs, dict) or not attrs:
        raise missing_param("prime_contract")
    return attrs


@router.post("/rest/v1.0/prime_contract")
async def create_prime_contract(request: Request) -> Response:
    body = await read_json(request)
    context = project_context(
        state_of(request), body.get("project_id", request.query_params.get("project_id"))
    )
    record, errors = records.create(PRIME_CONTRACTS, context, _prime_attrs(body))
    return saved(record, errors, context, views.prime_contract, 201)


@router.get("/rest/v1.0/prime_contract/{id}")
async def show_prime_contract(request: Request, contract_id: int = Path(alias="id")) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    return JSONResponse(views.prime_contract(context, found(PRIME_CONTRACTS, context, contract_id)))


@router.patch("/rest/v1.0/prime_contract/{id}")
async def update_prime_contract(request: Request, contract_id: int = Path(alias="id")) -> Response:
    body = await read_json(request)
    context = project_context(
        state_of(request), body.get("project_id", request.query_params.get("project_id"))
    )
    found(PRIME_CONTRACTS, context, contract_id)
    record, errors = records.update(PRIME_CONTRACTS, context, contract_id, _prime_attrs(body))
    return saved(record, errors, context, views.prime_contract, 200)


@router.get("/rest/v1.0/prime_contracts")
async def list_prime_contracts(request: Request) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    return listed(request, context, PRIME_CONTRACTS.kind, views.prime_contract, filters=("updated_at", "id"))


@router.patch("/rest/v1.0/prime_contracts/{prime_contract_id}/line_items/sync")
async def sync_prime_contract_lines(request: Request, prime_contract_id: int = Path()) -> Response:
    body = await read_json(request)
    context = project_context(state_of(request), request.query_params.get("project_id"))
    found(PRIME_CONTRACTS, context, prime_contract_id)
    lines = within(context, {"prime_contract_id": prime_contract_id})
    return synced(PRIME_CONTRACT_LINE_ITEMS, lines, body, views.prime_contract_line_item)


@router.get("/rest/v1.0/prime_contracts/{prime_contract_id}/line_items")
async def list_prime_contract_lines(request: Request, prime_contract_id: int = Path()) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    found(PRIME_CONTRACTS, context, prime_contract_id)
    lines = within(context, {"prime_contract_id": prime_contract_id})
    kind, view = PRIME_CONTRACT_LINE_ITEMS.kind, views.prime_contract_line_item
    return listed(request, lines, kind, view, filters=LINE_FILTERS, exact=LINE_EXACT)


def _commitment_routes(
    collection: str, header: Resource, header_view: View, lines: Resource, line_view: View, holder: str
) -> None:
    """The four operations of ``/rest/v1.0/<collection>``; ``holder`` names the contract id."""

    async def sync_headers(request: Request) -> Response:
        body = await read_json(request)
        context = project_context(
            state_of(request), body.get("project_id", request.query_params.get("project_id"))
        )
        return synced(header, context, body, header_view)

    async def list_headers(request: Request) -> Response:
        context = project_context(state_of(request), request.query_params.get("project_id"))
        filters = ("origin_id", "updated_at", "created_at", "id")
        return listed(request, context, header.kind, header_view, filters=filters, exact=("status",))

    def line_scope(request: Request) -> records.Context:
        context = project_context(state_of(request), request.query_params.get("project_id"))
        contract_id = path_id(request, holder)
        found(header, context, contract_id)
        return within(context, {holder: contract_id})

    async def sync_lines(request: Request) -> Response:
        body = await read_json(request)
        return synced(lines, line_scope(request), body, line_view)

    async def list_lines(request: Request) -> Response:
        return listed(
            request, line_scope(request), lines.kind, line_view, filters=LINE_FILTERS, exact=LINE_EXACT
        )

    base = f"/rest/v1.0/{collection}"
    router.add_api_route(f"{base}/sync", sync_headers, methods=["PATCH"], name=f"sync_{collection}")
    router.add_api_route(base, list_headers, methods=["GET"], name=f"list_{collection}")
    router.add_api_route(
        f"{base}/{{{holder}}}/line_items/sync", sync_lines, methods=["PATCH"], name=f"sync_{holder}_lines"
    )
    router.add_api_route(
        f"{base}/{{{holder}}}/line_items", list_lines, methods=["GET"], name=f"list_{holder}_lines"
    )


_commitment_routes(
    "work_order_contracts",
    WORK_ORDER_CONTRACTS,
    views.work_order_contract,
    WORK_ORDER_CONTRACT_LINE_ITEMS,
    views.work_order_contract_line_item,
    "work_order_contract_id",
)
_commitment_routes(
    "purchase_order_contracts",
    PURCHASE_ORDER_CONTRACTS,
    views.purchase_order_contract,
    PURCHASE_ORDER_CONTRACT_LINE_ITEMS,
    views.purchase_order_contract_line_item,
    "purchase_order_contract_id",
)
