"""Direct costs and their lines, with the one rule Procore states about concurrency.

Procore says the direct cost line item sync must not run concurrently in a project: an
overlapping request is answered 409. The sandbox keeps a per-project "in progress" mark for the
whole request, including an ``await`` inside it (the ``sync_hold_ms`` fault knob, 0 by default),
so two requests that really overlap on a real server collide as they would in Procore. The mark
lives in memory: it guards requests of one sandbox process, which is all a sandbox serves.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from sandbox import views
from sandbox.api_errors import ApiError, read_json
from sandbox.resources import DIRECT_COST_LINE_ITEMS, DIRECT_COSTS
from sandbox.scopes import listed, project_context, synced
from sandbox.state import state_of

router = APIRouter()
SYNC_RUNNING = "Another direct cost line item sync is running for this project"


@router.patch("/rest/v1.0/projects/{project_id}/direct_costs/sync")
async def sync_direct_costs(request: Request, project_id: int = Path()) -> Response:
    body = await read_json(request)
    context = project_context(state_of(request), project_id)
    return synced(DIRECT_COSTS, context, body, views.direct_cost)


@router.get("/rest/v1.1/projects/{project_id}/direct_costs")
async def list_direct_costs(request: Request, project_id: int = Path()) -> Response:
    context = project_context(state_of(request), project_id)
    filters = ("origin_id", "updated_at", "created_at", "id")
    exact = ("invoice_number", "payment_date", "received_date")
    return listed(request, context, DIRECT_COSTS.kind, views.direct_cost_listed, filters=filters, exact=exact)


@router.patch("/rest/v1.0/projects/{project_id}/direct_costs/line_items/sync")
async def sync_direct_cost_lines(request: Request, project_id: int = Path()) -> Response:
    state = state_of(request)
    body = await read_json(request)
    context = project_context(state, project_id)
    if project_id in state.running_line_syncs:
        raise ApiError(409, SYNC_RUNNING)
    state.running_line_syncs.add(project_id)
    try:
        if hold_ms := state.faults.settings.sync_hold_ms:
            await state.sleep(hold_ms / 1000)
        return synced(DIRECT_COST_LINE_ITEMS, context, body, views.direct_cost_line_item)
    finally:
        state.running_line_syncs.discard(project_id)


@router.get("/rest/v1.0/projects/{project_id}/direct_costs/line_items")
async def list_direct_cost_lines(request: Request, project_id: int = Path()) -> Response:
    context = project_context(state_of(request), project_id)
    exact = ("direct_cost_id", "cost_code_id", "line_item_type_id")
    kind, view = DIRECT_COST_LINE_ITEMS.kind, views.direct_cost_line_item
    return listed(request, context, kind, view, filters=("updated_at", "created_at", "id"), exact=exact)
