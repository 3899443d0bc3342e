"""Company-level operations: projects, standard cost codes, cost types and users.

Each handler finds its scope (``sandbox.scopes``), hands the body to the resource engine
(``sandbox.records`` with the declarations of ``sandbox.resources``) and shows the result with
``sandbox.views``. Literal paths (``/projects/sync``) are declared before parametrised ones.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from sandbox import records, views
from sandbox.answers import JSONResponse
from sandbox.api_errors import missing_param, not_found, read_json
from sandbox.resources import LINE_ITEM_TYPES, PROJECTS, STANDARD_COST_CODES, USERS
from sandbox.scopes import as_int, company_context, found, listed, project_context, saved, synced, within
from sandbox.state import state_of

router = APIRouter()
PROJECTS_MAX_PER_PAGE = 300  # GET /rest/v1.1/projects: default 100, max 300
BY_STATUS = {"Active": True, "Inactive": False}


@router.get("/rest/v1.1/projects")
async def list_projects(request: Request) -> Response:
    context = company_context(state_of(request), request.query_params.get("company_id"))
    rows = context.store.projects(context.company_id)
    status = request.query_params.get("filters[by_status]")
    if status in BY_STATUS:
        rows = [row for row in rows if row["active"] is BY_STATUS[status]]
    return listed(
        request,
        context,
        PROJECTS.kind,
        views.project,
        filters=("origin_id", "updated_at", "created_at", "id"),
        exact=("project_number", "name"),
        max_per_page=PROJECTS_MAX_PER_PAGE,
        rows=rows,
    )


@router.post("/rest/v1.0/projects")
async def create_project(request: Request) -> Response:
    body = await read_json(request)
    context = company_context(state_of(request), body.get("company_id"))
    attrs = body.get("project")
    if not isinstance(attrs, dict) or not attrs:
        raise missing_param("project")
    record, errors = records.create(PROJECTS, context, attrs)
    return saved(record, errors, context, views.project, 201)


@router.patch("/rest/v1.0/projects/sync")
async def sync_projects(request: Request) -> Response:
    body = await read_json(request)
    context = company_context(
        state_of(request), body.get("company_id", request.query_params.get("company_id"))
    )
    return synced(PROJECTS, context, body, views.project)


@router.get("/rest/v1.0/projects/{id}")
async def show_project(request: Request, project_id: int = Path(alias="id")) -> Response:
    context = company_context(state_of(request), request.query_params.get("company_id"))
    record = context.store.project(context.company_id, project_id)
    if record is None:
        raise not_found("Project", project_id)
    return JSONResponse(views.project(context, record))


@router.patch("/rest/v1.0/projects/{id}")
async def update_project(request: Request, project_id: int = Path(alias="id")) -> Response:
    """Procore's "Update project": the company in the body, the changes under ``project``,
    checked like a create (422 with Rails-style errors); 404 for a project not in the company."""
    body = await read_json(request)
    context = company_context(state_of(request), body.get("company_id"))
    attrs = body.get("project")
    if not isinstance(attrs, dict) or not attrs:
        raise missing_param("project")
    found(PROJECTS, context, project_id)
    record, errors = records.update(PROJECTS, context, project_id, attrs)
    return saved(record, errors, context, views.project, 200)


@router.get("/rest/v1.0/standard_cost_code_lists")
async def list_standard_cost_code_lists(request: Request) -> Response:
    context = company_context(state_of(request), request.query_params.get("company_id"))
    return listed(request, context, "standard_cost_code_lists", views.standard_cost_code_list)


def _standard_list(request: Request, company_value: object, list_value: object) -> records.Context:
    """The company's context narrowed to one of its standard cost code lists (404 if not its)."""
    context = company_context(state_of(request), company_value)
    list_id = as_int("standard_cost_code_list_id", list_value)
    if context.store.record("standard_cost_code_lists", context.company_id, list_id) is None:
        raise not_found("StandardCostCodeList", list_id)
    return within(context, {"standard_cost_code_list_id": list_id})


@router.get("/rest/v1.0/standard_cost_codes")
async def list_standard_cost_codes(request: Request) -> Response:
    query = request.query_params
    context = _standard_list(request, query.get("company_id"), query.get("standard_cost_code_list_id"))
    return listed(
        request, context, STANDARD_COST_CODES.kind, views.standard_cost_code, filters=("origin_id",)
    )


@router.patch("/rest/v1.0/standard_cost_codes/sync")
async def sync_standard_cost_codes(request: Request) -> Response:
    body = await read_json(request)
    context = _standard_list(request, body.get("company_id"), body.get("standard_cost_code_list_id"))
    return synced(STANDARD_COST_CODES, context, body, views.standard_cost_code)


@router.get("/rest/v1.0/line_item_types")
async def list_line_item_types(request: Request) -> Response:
    # "You must supply either a company_id or project_id": a project names its company.
    state, query = state_of(request), request.query_params
    if query.get("company_id") or not query.get("project_id"):
        context = company_context(state, query.get("company_id"))
    else:
        project = project_context(state, query.get("project_id"))
        context = records.Context(project.store, project.company_id, project.company_id)
    return listed(request, context, LINE_ITEM_TYPES.kind, views.line_item_type, filters=("origin_id",))


@router.patch("/rest/v1.0/line_item_types/sync")
async def sync_line_item_types(request: Request) -> Response:
    body = await read_json(request)
    context = company_context(state_of(request), body.get("company_id"))
    return synced(LINE_ITEM_TYPES, context, body, views.line_item_type)


@router.get("/rest/v1.3/companies/{company_id}/users")
async def list_users(request: Request, company_id: int = Path()) -> Response:
    context = company_context(state_of(request), company_id)
    return listed(
        request,
        context,
        USERS.kind,
        views.user,
        filters=("origin_id", "updated_at", "created_at", "search"),
        exact=("vendor_id",),
        search_fields=("first_name", "last_name", "email_address"),
    )


@router.patch("/rest/v1.3/companies/{company_id}/users/sync")
async def sync_users(request: Request, company_id: int = Path()) -> Response:
    body = await read_json(request)
    context = company_context(state_of(request), company_id)
    return synced(USERS, context, body, views.user)
