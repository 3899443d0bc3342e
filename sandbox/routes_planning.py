"""Resource Planning (workforce-planning v2): groups, people and projects of a company.

- Ids are UUIDs. Lists are bare JSON arrays in **0-based** pages (``page``, default 0) of at
  most 400 items, sorted by creation; people filter on ``employee_number``, ``email``,
  ``first_name``, ``last_name``, projects on ``project_number`` and ``name`` (exact values).
- Creates answer ``{"id": ...}`` (people, groups) or ``[{"id": ...}]`` (projects), with 200 as
  the operations document. **Updates are POST to the item** and change only the fields sent;
  updating a project requires ``name``, ``status`` and ``group_ids``, as Procore's schema says,
  and takes only the fields that operation declares: any other (``est_end_date``, the address,
  ``project_number``) is ignored, as Procore ignores fields it does not know.
  Delete answers ``{}``.
- A person's ``employee_number`` and ``email``, and a project's ``project_number``, are unique
  in the company: taking one that another record holds answers **409 Conflict**.
- Every ``group_ids`` entry must be one of the company's groups, and at least one is needed;
  a person's ``status`` is active or inactive, a project's active, pending or inactive, and an
  active project needs a ``start_date``. Anything else answers 400 naming the field.
- People show their name as ``{"first", "last"}``, as Procore does. Projects show their dates
  and stamps as epoch milliseconds, as their response schema types them (integers "in Epoch
  time"; milliseconds is our reading, LaborChart's habit); they take dates as ``YYYY-MM-DD``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from sandbox.api_errors import ApiError, not_found, read_json
from sandbox.contract import operations
from sandbox.scopes import company_context
from sandbox.state import state_of
from sandbox.store import Record, Store

router = APIRouter()
BASE = "/rest/v1.0/workforce-planning/v2/companies/{company_id}"
PAGE_SIZE = 400
PERSON_STATUSES = ("active", "inactive")
PROJECT_STATUSES = ("active", "pending", "inactive")
PEOPLE_FILTERS = ("employee_number", "email", "first_name", "last_name")
PROJECT_FILTERS = ("project_number", "name")
UNIQUE = {"rp_people": ("employee_number", "email"), "rp_projects": ("project_number",)}
PROJECT_UPDATE = "RestV10Workforce-planningV2CompaniesCompanyIdProjectsProjectIdPost"


def _company(request: Request, company_id: str) -> tuple[Store, int]:
    context = company_context(state_of(request), company_id)
    return context.store, context.company_id


def _page(request: Request, rows: list[Record]) -> list[Record]:
    raw = request.query_params.get("page", "0")
    if not raw.isdigit():
        raise ApiError(400, f"page must be a 0-based page number, got {raw!r}")
    start = int(raw) * PAGE_SIZE
    return rows[start : start + PAGE_SIZE]


def _filtered(request: Request, rows: list[Record], names: tuple[str, ...]) -> list[Record]:
    wanted = {name: request.query_params[name] for name in names if name in request.query_params}
    return [row for row in rows if all(str(row.get(name) or "") == value for name, value in wanted.items())]


def _check_groups(store: Store, company: int, body: dict[str, Any], required: bool) -> None:
    if "group_ids" not in body and not required:
        return
    ids = body.get("group_ids")
    if not isinstance(ids, list) or not ids:
        raise ApiError(400, {"group_ids": ["must list at least one group"]})
    known = {group["id"] for group in store.records("rp_groups", company)}
    unknown = [str(i) for i in ids if i not in known]
    if unknown:
        raise ApiError(400, {"group_ids": [f"unknown group {', '.join(unknown)}"]})


def _check_status(body: dict[str, Any], allowed: tuple[str, ...], required: bool) -> None:
    if "status" not in body and not required:
        return
    if body.get("status") not in allowed:
        raise ApiError(400, {"status": [f"must be one of {', '.join(allowed)}"]})


def _check_required(body: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise ApiError(400, {name: ["is required"] for name in missing})


def _check_unique(store: Store, kind: str, company: int, body: dict[str, Any], own_id: str | None = None) -> None:
    for name in UNIQUE[kind]:
        value = body.get(name)
        if value in (None, ""):
            continue
        if any(row.get(name) == value and row["id"] != own_id for row in store.records(kind, company)):
            raise ApiError(409, f"{name} {value!r} is already taken by another record of this company")


def _found(store: Store, kind: str, company: int, record_id: str, label: str) -> Record:
    record = store.record(kind, company, record_id)
    if record is None:
        raise not_found(label, record_id)
    return record


# --- groups -----------------------------------------------------------------------------------


def _group_view(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in ("created_at", "updated_at")}


@router.get(BASE + "/groups")
async def list_groups(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    return JSONResponse([_group_view(group) for group in store.records("rp_groups", company)])


@router.post(BASE + "/groups")
async def create_group(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    body = await read_json(request)
    _check_required(body, ("name", "timezone"))
    if any(group["name"] == body["name"] for group in store.records("rp_groups", company)):
        raise ApiError(409, f"a group named {body['name']!r} already exists")
    record = store.insert("rp_groups", company, body)
    store.commit()
    return JSONResponse({"id": record["id"]})


# --- people -----------------------------------------------------------------------------------


def _person_view(company: int, record: Record) -> Record:
    shown = {k: v for k, v in record.items() if k not in ("first_name", "last_name")}
    return shown | {"name": {"first": record.get("first_name"), "last": record.get("last_name")},
                    "company_id": str(company)}


@router.get(BASE + "/people")
async def list_people(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    rows = _filtered(request, store.records("rp_people", company), PEOPLE_FILTERS)
    return JSONResponse([_person_view(company, row) for row in _page(request, _by_creation(rows))])


@router.post(BASE + "/people")
async def create_person(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    body = await read_json(request)
    _check_required(body, ("first_name", "last_name", "status"))
    for flag in ("is_user", "is_assignable"):
        if not isinstance(body.get(flag), bool):
            raise ApiError(400, {flag: ["is required and must be true or false"]})
    _check_status(body, PERSON_STATUSES, required=True)
    _check_groups(store, company, body, required=True)
    _check_unique(store, "rp_people", company, body)
    record = store.insert("rp_people", company, body)
    store.commit()
    return JSONResponse({"id": record["id"]})


@router.get(BASE + "/people/{person_id}")
async def show_person(request: Request, company_id: str, person_id: str) -> Response:
    store, company = _company(request, company_id)
    return JSONResponse(_person_view(company, _found(store, "rp_people", company, person_id, "Person")))


@router.post(BASE + "/people/{person_id}")
async def update_person(request: Request, company_id: str, person_id: str) -> Response:
    store, company = _company(request, company_id)
    _found(store, "rp_people", company, person_id, "Person")
    body = await read_json(request)
    _check_status(body, PERSON_STATUSES, required=False)
    _check_groups(store, company, body, required=False)
    _check_unique(store, "rp_people", company, body, own_id=person_id)
    record = store.update("rp_people", company, person_id, body)
    store.commit()
    return JSONResponse(_person_view(company, record))


@router.delete(BASE + "/people/{person_id}")
async def delete_person(request: Request, company_id: str, person_id: str) -> Response:
    return _delete(request, company_id, "rp_people", person_id, "Person")


# --- projects ---------------------------------------------------------------------------------


def _check_project(store: Store, company: int, body: dict[str, Any]) -> None:
    _check_required(body, ("name",))
    _check_status(body, PROJECT_STATUSES, required=True)
    _check_groups(store, company, body, required=True)
    if body["status"] == "active" and not body.get("start_date"):
        raise ApiError(400, {"start_date": ["is required for an active project"]})


def _epoch_ms(value: Any) -> int | None:
    if not value:
        return None
    if len(str(value)) == 10:  # a date
        moment = datetime.combine(date.fromisoformat(str(value)), datetime.min.time(), UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def _project_view(record: Record) -> Record:
    dated = ("start_date", "est_end_date", "closed_date", "created_at", "updated_at")
    return record | {name: _epoch_ms(record.get(name)) for name in dated if name in record}


@router.get(BASE + "/projects")
async def list_planning_projects(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    rows = _filtered(request, store.records("rp_projects", company), PROJECT_FILTERS)
    return JSONResponse([_project_view(row) for row in _page(request, _by_creation(rows))])


@router.post(BASE + "/projects")
async def create_planning_project(request: Request, company_id: str) -> Response:
    store, company = _company(request, company_id)
    body = await read_json(request)
    _check_project(store, company, body)
    _check_unique(store, "rp_projects", company, body)
    record = store.insert("rp_projects", company, body)
    store.commit()
    return JSONResponse([{"id": record["id"]}])


@router.get(BASE + "/projects/{project_id}")
async def show_planning_project(request: Request, company_id: str, project_id: str) -> Response:
    store, company = _company(request, company_id)
    return JSONResponse(_project_view(_found(store, "rp_projects", company, project_id, "Project")))


@cache
def _project_update_takes() -> frozenset[str]:
    """The fields Procore's project update operation declares (or requires), from its OpenAPI file."""
    [operation] = [op for op in operations() if op.operation_id == PROJECT_UPDATE]
    schema = operation.spec["requestBody"]["schema"]
    return frozenset(schema.get("properties", {})) | frozenset(schema.get("required", []))


@router.post(BASE + "/projects/{project_id}")
async def update_planning_project(request: Request, company_id: str, project_id: str) -> Response:
    store, company = _company(request, company_id)
    _found(store, "rp_projects", company, project_id, "Project")
    body = {name: value for name, value in (await read_json(request)).items() if name in _project_update_takes()}
    _check_project(store, company, body)
    record = store.update("rp_projects", company, project_id, body)
    store.commit()
    return JSONResponse(_project_view(record))


@router.delete(BASE + "/projects/{project_id}")
async def delete_planning_project(request: Request, company_id: str, project_id: str) -> Response:
    return _delete(request, company_id, "rp_projects", project_id, "Project")


def _delete(request: Request, company_id: str, kind: str, record_id: str, label: str) -> Response:
    store, company = _company(request, company_id)
    _found(store, kind, company, record_id, label)
    store.delete(kind, company, record_id)
    store.commit()
    return JSONResponse({})


def _by_creation(rows: list[Record]) -> list[Record]:
    return sorted(rows, key=lambda row: (row["created_at"], row["id"]))
