"""Project-level set-up and budget: cost codes, sub jobs, WBS codes, budget lines and views.

Where each operation takes its project, as Procore's schemas declare it:

- cost codes: ``project_id`` (and optional ``sub_job_id``) in the query, for the list and the
  sync alike; the sync's items all land in that sub job (or at project level without one);
- sub jobs: the list in the query; the sync declares ``project_id`` in both the query and the
  body, and the sandbox takes either (when both come they must agree);
- WBS codes: in the path; budget line sync: in the body; budget views: in the query.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from sandbox import budget, views, wbs
from sandbox.answers import JSONResponse
from sandbox.api_errors import ApiError, not_found, read_json
from sandbox.listing import apply_filters
from sandbox.records import Context
from sandbox.resources import COST_CODES, SUB_JOBS
from sandbox.scopes import as_int, batch, listed, project_context, synced, within
from sandbox.state import state_of

router = APIRouter()


def _sub_job_scope(context: Context, value: object) -> Context:
    """The project's context narrowed to one sub job (404 if the project has no such sub job)."""
    if value is None or value == "":
        return context
    sub_job_id = as_int("sub_job_id", value)
    if context.store.record("sub_jobs", context.scope_id, sub_job_id) is None:
        raise not_found("SubJob", sub_job_id)
    return within(context, {"sub_job_id": sub_job_id})


@router.get("/rest/v1.0/cost_codes")
async def list_cost_codes(request: Request) -> Response:
    query = request.query_params
    context = _sub_job_scope(
        project_context(state_of(request), query.get("project_id")), query.get("sub_job_id")
    )
    return listed(request, context, COST_CODES.kind, views.cost_code, filters=("origin_id", "id"))


@router.patch("/rest/v1.0/cost_codes/sync")
async def sync_cost_codes(request: Request) -> Response:
    body = await read_json(request)
    query = request.query_params
    context = project_context(state_of(request), query.get("project_id", body.get("project_id")))
    context = _sub_job_scope(context, query.get("sub_job_id", body.get("sub_job_id")))
    context = within(context, {"sub_job_id": context.fixed.get("sub_job_id")})
    return synced(COST_CODES, context, body, views.cost_code)


@router.get("/rest/v1.0/sub_jobs")
async def list_sub_jobs(request: Request) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    return listed(request, context, SUB_JOBS.kind, views.sub_job)


@router.patch("/rest/v1.0/sub_jobs/sync")
async def sync_sub_jobs(request: Request) -> Response:
    body = await read_json(request)
    in_query, in_body = request.query_params.get("project_id"), body.get("project_id")
    if in_query not in (None, "") and in_body is not None and str(in_query) != str(in_body):
        raise ApiError(400, {"project_id": ["differs between the query and the body"]})
    context = project_context(state_of(request), in_body if in_body is not None else in_query)
    return synced(SUB_JOBS, context, body, views.sub_job)


@router.get("/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes")
async def list_wbs_codes(request: Request, project_id: int = Path()) -> Response:
    context = project_context(state_of(request), project_id)
    query = request.query_params
    rows = apply_filters(context.store.wbs_codes(project_id), query, [], supported=("updated_at",))
    if statuses := query.getlist("filters[status][]"):
        rows = [row for row in rows if row["status"] in statuses]
    if needle := (query.get("query") or "").lower():
        shown = {row["id"]: views.wbs_code(context, row) for row in rows}
        rows = [
            row
            for row in rows
            if needle in f"{shown[row['id']]['flat_code']} {shown[row['id']]['flat_name']}".lower()
        ]
    return listed(request, context, "wbs_codes", views.wbs_code, rows=rows)


@router.patch("/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create")
async def bulk_create_wbs_codes(request: Request, project_id: int = Path()) -> Response:
    body = await read_json(request)
    context = project_context(state_of(request), project_id)
    result = wbs.bulk_create(context, batch(body, "bulk"))
    context.store.commit()
    return JSONResponse(result, status_code=201)


@router.post("/rest/v1.0/budget_line_items/sync")
async def sync_budget_line_items(request: Request) -> Response:
    body = await read_json(request)
    context = project_context(
        state_of(request), body.get("project_id", request.query_params.get("project_id"))
    )
    lines, errors = budget.sync(context, batch(body, "budget_line_items"))
    if lines is None:
        return JSONResponse({"errors": errors}, status_code=422)
    context.store.commit()
    return JSONResponse(lines)


@router.get("/rest/v1.0/budget_views")
async def list_budget_views(request: Request) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    return listed(request, context, "budget_views", budget.budget_view)


ROW_FILTERS = {
    "budget_line_item_id[]": "id",
    "cost_code_id[]": "cost_code_id",
    "category_id[]": "category_id",
}


@router.get("/rest/v1.0/budget_views/{budget_view_id}/detail_rows")
async def list_budget_detail_rows(request: Request, budget_view_id: int = Path()) -> Response:
    context = project_context(state_of(request), request.query_params.get("project_id"))
    if context.store.record("budget_views", context.scope_id, budget_view_id) is None:
        raise not_found("BudgetView", budget_view_id)
    rows = context.store.budget_line_items(context.scope_id)
    for parameter, key in ROW_FILTERS.items():
        if wanted := request.query_params.getlist(parameter):
            ids = {as_int(parameter, value) for value in wanted}
            rows = [row for row in rows if budget.detail_row(context, row)[key] in ids]
    return listed(request, context, "budget_line_items", budget.detail_row, rows=rows)
