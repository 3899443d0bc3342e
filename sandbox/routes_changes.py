"""Change orders, budget changes and budget modifications: what the field writes in Procore and
the ERP reads back.

- Commitment and prime change orders (v1.0, ``/projects/{project_id}/...``): create, list, show,
  update, delete. The list takes only the filters Procore declares for it and has no pages: it
  answers every matching change order. A delete removes the change order (an approved one is
  refused, 422) and soft-deletes its change order package, which is how a reader learns of it.
- Their lines (REST v2, ``/companies/{company_id}/projects/{project_id}/...``): one call per
  line, ``{"data": ...}`` answers, pages of 10 by default (at most 100), errors in v2's
  ``{"error": {code, message, details}}`` shape. Creating, changing or deleting a line moves the
  change order's (and its package's) ``updated_at``.
- Change order packages: the paged list (``filters[include_deleted]=only|with`` shows deleted
  ones) and show.
- Budget changes (v1.0 with a flat body): a create or update checks the header and every
  adjustment line first and writes nothing unless all pass; the update adds lines without
  ``id``, changes lines with one, removes lines sent with ``_delete``. Delete is for good. The
  v2 adjustment line list reads every line of a project with its budget change's number.
- Budget modifications (legacy): reads always work; writes answer 405 with ``Allow: GET`` unless
  the sandbox company still uses the legacy budget tool (``legacy_budget_tool``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from sandbox import records, views_changes
from sandbox.answers import JSONResponse
from sandbox.api_errors import ApiError, missing_param, not_found, read_json
from sandbox.fields import BLANK
from sandbox.listing import apply_filters, paginate
from sandbox.records import Context, Resource, merge_errors, merged_record
from sandbox.resources_changes import (
    ADJUSTMENT_LINE_ITEMS,
    APPROVED_LOCKED,
    BUDGET_CHANGES,
    BUDGET_MODIFICATIONS,
    CHANGE_ORDER_LINES,
    COMMITMENT_CHANGE_ORDER_LINE_ITEMS,
    COMMITMENT_CHANGE_ORDERS,
    PACKAGE_KIND,
    PRIME_CHANGE_ORDER_LINE_ITEMS,
    PRIME_CHANGE_ORDERS,
    contract_of,
    follow_package,
    touch_change_order,
)
from sandbox.scopes import as_int, company_id, found, listed, path_id, project_context, saved, within
from sandbox.state import state_of
from sandbox.store import Record
from sandbox.validation import Errors
from sandbox.views import View

router = APIRouter()
Handler = Callable[[Request], Awaitable[Response]]
APPROVED_UNDELETABLE = "An approved change order cannot be deleted"
BUDGET_MODIFICATIONS_OFF = (
    "The Budget Modifications API is no longer available: this company has migrated to Budget "
    "Changes. Use the Budget Changes API instead."
)
V2_PER_PAGE, V2_MAX_PER_PAGE = 10, 100
V2_CODES = {400: "BAD_REQUEST", 403: "FORBIDDEN", 404: "NOT_FOUND", 422: "UNPROCESSABLE_ENTITY"}
CHANGE_ORDER_EXACT = (
    "contract_id",
    "status",
    "legacy_package_id",
    "batch_id",
    "executed",
    "signature_required",
)
SORTS = ("id", "created_at")



def _five_routes(base: str, name: str, list_all: Handler, create: Handler, show: Handler,
                 update: Handler, delete: Handler) -> None:
    """List and create at ``base``; show, update and delete at ``base/{id}``."""
    router.add_api_route(base, list_all, methods=["GET"], name=f"list_{name}")
    router.add_api_route(base, create, methods=["POST"], name=f"create_{name}")
    router.add_api_route(f"{base}/{{id}}", show, methods=["GET"], name=f"show_{name}")
    router.add_api_route(f"{base}/{{id}}", update, methods=["PATCH"], name=f"update_{name}")
    router.add_api_route(f"{base}/{{id}}", delete, methods=["DELETE"], name=f"delete_{name}")

def _project(request: Request) -> Context:
    return project_context(state_of(request), path_id(request, "project_id"))


def _attrs(body: dict[str, Any], key: str) -> dict[str, Any]:
    attrs = body.get(key)
    if not isinstance(attrs, dict):
        raise missing_param(key)
    return attrs


def _errors(errors: Errors) -> Response:
    return JSONResponse({"errors": errors}, status_code=422)


# --- REST v2 conventions -----------------------------------------------------------------------


def _v2_error(status: int, message: str, errors: Errors | None = None) -> Response:
    details = [
        {"reason_code": "INVALID", "message": f"{name} {problem}", "source": name}
        for name, problems in (errors or {}).items()
        for problem in problems
    ]
    code = V2_CODES.get(status, "ERROR")
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status)


def v2(handler: Handler) -> Handler:
    """Answer the refusals a v2 route raises in v2's error shape."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            if isinstance(error.errors, str):
                return _v2_error(error.status, error.errors)
            return _v2_error(error.status, "The request is invalid", error.errors)

    return wrapped


def _v2_project(request: Request) -> Context:
    """The path's company must be the request's; then the project, as in v1."""
    company_id(state_of(request), request.path_params.get("company_id"))
    return _project(request)


def _v2_page(request: Request, context: Context, rows: list[Record], view: View) -> Response:
    query = request.query_params
    page = as_int("page", query["page"]) if query.get("page") else 1
    size = as_int("per_page", query["per_page"]) if query.get("per_page") else V2_PER_PAGE
    items, headers = paginate(rows, max(page, 1), min(max(size, 1), V2_MAX_PER_PAGE), request.url)
    return JSONResponse({"data": [view(context, row) for row in items]}, headers=headers)


def _v2_saved(record: Record | None, errors: Errors, context: Context, view: View) -> Response:
    if record is None:
        return _v2_error(422, "The line item is invalid", errors)
    return JSONResponse({"data": view(context, record)})


# --- change orders -------------------------------------------------------------------------------


def _sorted(rows: list[Record], sort: str | None) -> list[Record]:
    field = (sort or "id").lstrip("-")
    if field not in SORTS:
        return rows
    return sorted(rows, key=lambda row: (row[field], row["id"]), reverse=(sort or "").startswith("-"))


def _by_vendor(context: Context, rows: list[Record], vendor: str | None) -> list[Record]:
    if vendor is None:
        return rows
    wanted = as_int("filters[vendor_id]", vendor)
    return [row for row in rows if _vendor_of(context, row) == wanted]


def _vendor_of(context: Context, change_order: Record) -> int | None:
    found_ = contract_of(context, change_order)
    return found_[1].get("vendor_id") if found_ else None


def _change_order_routes(resource: Resource, view: View, collection: str) -> None:
    """The five operations of ``/rest/v1.0/projects/{project_id}/<collection>``."""
    kind = resource.kind

    async def list_all(request: Request) -> Response:
        context = _project(request)
        query = request.query_params
        rows = apply_filters(
            context.store.records(kind, context.scope_id),
            query,
            query.getlist("filters[id]"),
            supported=("updated_at", "id"),
            exact=CHANGE_ORDER_EXACT,
        )
        rows = _sorted(_by_vendor(context, rows, query.get("filters[vendor_id]")), query.get("sort"))
        return JSONResponse([view(context, row) for row in rows])

    async def create(request: Request) -> Response:
        body = await read_json(request)
        context = _project(request)
        record, errors = records.create(resource, context, _attrs(body, "change_order"))
        return saved(record, errors, context, view, 201)

    async def show(request: Request) -> Response:
        context = _project(request)
        return JSONResponse(view(context, found(resource, context, path_id(request, "id"))))

    async def update(request: Request) -> Response:
        body = await read_json(request)
        context = _project(request)
        change_order_id = path_id(request, "id")
        found(resource, context, change_order_id)
        record, errors = records.update(resource, context, change_order_id, _attrs(body, "change_order"))
        if record is not None:
            follow_package(context, record)
        return saved(record, errors, context, view, 200)

    async def delete(request: Request) -> Response:
        context = _project(request)
        change_order = found(resource, context, path_id(request, "id"))
        if change_order["status"] == "approved":
            return _errors({"base": [APPROVED_UNDELETABLE]})
        _delete_change_order(context, kind, change_order)
        context.store.commit()
        return Response(status_code=204)

    _five_routes(f"/rest/v1.0/projects/{{project_id}}/{collection}", collection,
                 list_all, create, show, update, delete)


def _delete_change_order(context: Context, kind: str, change_order: Record) -> None:
    """Lines and change order go; the package stays, deleted, with the total it had."""
    store = context.store
    line_kind, holder_field, _ = CHANGE_ORDER_LINES[kind]
    is_commitment = kind == "commitment_change_orders"
    shown = views_changes.commitment_change_order if is_commitment else views_changes.prime_change_order
    grand_total = shown(context, change_order)["grand_total"]
    for line in store.line_items(line_kind, context.scope_id, **{holder_field: change_order["id"]}):
        store.delete(line_kind, context.scope_id, line["id"])
    store.delete(kind, context.scope_id, change_order["id"])
    package_id = change_order.get("legacy_package_id")
    if package_id is not None:
        now = store.touch(PACKAGE_KIND, context.scope_id, package_id)["updated_at"]
        changes = {"deleted_at": now, "grand_total": grand_total}
        store.update(PACKAGE_KIND, context.scope_id, package_id, changes)


_change_order_routes(COMMITMENT_CHANGE_ORDERS, views_changes.commitment_change_order, "commitment_change_orders")
_change_order_routes(PRIME_CHANGE_ORDERS, views_changes.prime_change_order, "prime_change_orders")


# --- change order lines (REST v2) ----------------------------------------------------------------


def _line_routes(holder: Resource, lines: Resource) -> None:
    """The five operations of ``.../<change orders>/{<change order>_id}/line_items``."""
    _, holder_field, _ = CHANGE_ORDER_LINES[holder.kind]
    view = views_changes.change_order_line_item

    def scope(request: Request) -> tuple[Context, Record]:
        context = _v2_project(request)
        change_order = found(holder, context, path_id(request, holder_field))
        return within(context, {holder_field: change_order["id"]}), change_order

    def answer(context: Context, change_order: Record, record: Record | None, errors: Errors) -> Response:
        if record is not None:
            touch_change_order(context, holder.kind, change_order)
            context.store.commit()
        return _v2_saved(record, errors, context, view)

    @v2
    async def list_lines(request: Request) -> Response:
        context, change_order = scope(request)
        rows = context.store.line_items(lines.kind, context.scope_id, **{holder_field: change_order["id"]})
        rows.sort(key=lambda row: (row.get("position") or 0, row["id"]))
        return _v2_page(request, context, rows, view)

    @v2
    async def create(request: Request) -> Response:
        body = await read_json(request)
        context, change_order = scope(request)
        record, errors = records.create(lines, context, body)
        return answer(context, change_order, record, errors)

    @v2
    async def show(request: Request) -> Response:
        context, _ = scope(request)
        return JSONResponse({"data": view(context, found(lines, context, path_id(request, "id")))})

    @v2
    async def update(request: Request) -> Response:
        body = await read_json(request)
        context, change_order = scope(request)
        before = found(lines, context, path_id(request, "id"))
        record, errors = records.update(lines, context, before["id"], body)
        if record == before:
            return _v2_saved(record, errors, context, view)  # nothing changed: nothing is stamped
        return answer(context, change_order, record, errors)

    @v2
    async def delete(request: Request) -> Response:
        context, change_order = scope(request)
        line = found(lines, context, path_id(request, "id"))
        if change_order["status"] == "approved":
            return _v2_error(422, f"The line item {APPROVED_LOCKED}", {"base": [APPROVED_LOCKED]})
        context.store.delete(lines.kind, context.scope_id, line["id"])
        touch_change_order(context, holder.kind, change_order)
        context.store.commit()
        return Response(status_code=204)

    project = "/rest/v2.0/companies/{company_id}/projects/{project_id}"
    _five_routes(f"{project}/{holder.kind}/{{{holder_field}}}/line_items", f"{holder.kind}_lines",
                 list_lines, create, show, update, delete)


_line_routes(COMMITMENT_CHANGE_ORDERS, COMMITMENT_CHANGE_ORDER_LINE_ITEMS)
_line_routes(PRIME_CHANGE_ORDERS, PRIME_CHANGE_ORDER_LINE_ITEMS)


# --- change order packages -----------------------------------------------------------------------

# filters[include_deleted]: "only" the deleted packages, "with" them, else (default) without them.
DELETED: dict[str | None, Callable[[Record], bool]] = {
    "only": lambda row: row["deleted_at"] is not None,
    "with": lambda row: True,
}


@router.get("/rest/v1.0/change_order_packages")
async def list_change_order_packages(request: Request) -> Response:
    query = request.query_params
    context = project_context(state_of(request), query.get("project_id"))
    rows = context.store.records(PACKAGE_KIND, context.scope_id)
    if query.get("contract_id"):
        contract_id = as_int("contract_id", query["contract_id"])
        rows = [row for row in rows if row["contract_id"] == contract_id]
    keep = DELETED.get(query.get("filters[include_deleted]"), lambda row: row["deleted_at"] is None)
    rows = [row for row in rows if keep(row)]
    view = views_changes.change_order_package
    return listed(request, context, PACKAGE_KIND, view, filters=("updated_at", "created_at", "id"), rows=rows)


@router.get("/rest/v1.0/change_order_packages/{id}")
async def show_change_order_package(request: Request) -> Response:
    query = request.query_params
    context = project_context(state_of(request), query.get("project_id"))
    package_id = path_id(request, "id")
    package = context.store.record(PACKAGE_KIND, context.scope_id, package_id)
    contract = as_int("contract_id", query["contract_id"]) if query.get("contract_id") else None
    hidden = package is None or package["deleted_at"] is not None
    if hidden or contract not in (None, package["contract_id"]):  # type: ignore[index]
        raise not_found("ChangeOrderPackage", package_id)
    return JSONResponse(views_changes.change_order_package(context, package))


# --- budget changes ------------------------------------------------------------------------------

ADJUSTMENTS = "adjustment_line_items"
LINE_KIND = ADJUSTMENT_LINE_ITEMS.kind
# One planned line write: (stored line or None to create, attributes, delete it).
Plan = list[tuple[Record | None, dict[str, Any], bool]]


def _adjustment_plan(context: Context, budget_change_id: int | None, items: Any) -> tuple[Plan, Errors]:
    """Every line of the request checked as it would be written; errors name the item."""
    if items is None:
        return [], {}
    if not isinstance(items, list):
        return [], {ADJUSTMENTS: ["must be a list"]}
    plan: Plan = []
    errors: Errors = {}
    lines = within(context, {"budget_change_id": budget_change_id})
    for index, item in enumerate(items):
        where = f"{ADJUSTMENTS}[{index}]"
        if not isinstance(item, dict):
            errors[where] = ["must be an object"]
            continue
        existing = None
        if item.get("_delete") is True and item.get("id") is None:
            errors[f"{where}.id"] = [BLANK]  # nothing to delete
            continue
        if item.get("id") is not None:
            line_id = records.as_id(item["id"])
            existing = records.find(ADJUSTMENT_LINE_ITEMS, lines, line_id) if line_id is not None else None
            if existing is None or budget_change_id is None:
                errors[f"{where}.id"] = [records.NOT_FOUND_BY_ID]
                continue
        if item.get("_delete") is True and existing is not None:
            plan.append((existing, item, True))
            continue
        _, _, problems = merged_record(ADJUSTMENT_LINE_ITEMS, lines, existing, item)
        errors = merge_errors(errors, {f"{where}.{name}": found_ for name, found_ in problems.items()})
        plan.append((existing, item, False))
    return plan, errors


def _apply(context: Context, budget_change_id: int, plan: Plan) -> bool:
    """Write the checked plan; whether any line changed."""
    lines = within(context, {"budget_change_id": budget_change_id})
    moved = False
    for existing, item, remove in plan:
        if remove and existing is not None:
            context.store.delete(LINE_KIND, context.scope_id, existing["id"])
            moved = True
        elif existing is None:
            records.create(ADJUSTMENT_LINE_ITEMS, lines, item)
            moved = True
        else:
            record, _ = records.save(ADJUSTMENT_LINE_ITEMS, lines, existing, item)
            moved = moved or record != existing
    return moved


def _header(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in (ADJUSTMENTS, "id")}


@router.get("/rest/v1.0/projects/{project_id}/budget_changes")
async def list_budget_changes(request: Request) -> Response:
    context = _project(request)
    stored = context.store.records(BUDGET_CHANGES.kind, context.scope_id)
    rows = [views_changes.budget_change_summary(context, row) for row in stored]
    if request.query_params.get("exclude_custom_fields") == "true":
        rows = [{name: value for name, value in row.items() if name != "custom_fields"} for row in rows]
    return JSONResponse({"data": rows})


@router.post("/rest/v1.0/projects/{project_id}/budget_changes")
async def create_budget_change(request: Request) -> Response:
    body = await read_json(request)
    context = _project(request)
    _, _, errors = merged_record(BUDGET_CHANGES, context, None, _header(body))
    plan, line_errors = _adjustment_plan(context, None, body.get(ADJUSTMENTS))
    if errors or line_errors:
        return _errors(merge_errors(errors, line_errors))
    record, _ = records.create(BUDGET_CHANGES, context, _header(body))
    assert record is not None  # checked above
    _apply(context, record["id"], plan)
    context.store.commit()
    return JSONResponse({"data": views_changes.budget_change(context, record)}, status_code=201)


@router.get("/rest/v1.0/projects/{project_id}/budget_changes/{id}")
async def show_budget_change(request: Request) -> Response:
    context = _project(request)
    record = found(BUDGET_CHANGES, context, path_id(request, "id"))
    return JSONResponse({"data": views_changes.budget_change(context, record)})


@router.patch("/rest/v1.0/projects/{project_id}/budget_changes/{id}")
async def update_budget_change(request: Request) -> Response:
    body = await read_json(request)
    context = _project(request)
    existing = found(BUDGET_CHANGES, context, path_id(request, "id"))
    _, _, errors = merged_record(BUDGET_CHANGES, context, existing, _header(body))
    plan, line_errors = _adjustment_plan(context, existing["id"], body.get(ADJUSTMENTS))
    if errors or line_errors:
        return _errors(merge_errors(errors, line_errors))
    record, _ = records.save(BUDGET_CHANGES, context, existing, _header(body))
    assert record is not None  # checked above
    if _apply(context, record["id"], plan):
        record = context.store.touch(BUDGET_CHANGES.kind, context.scope_id, record["id"])
    context.store.commit()
    return JSONResponse({"data": views_changes.budget_change(context, record)})


@router.delete("/rest/v1.0/projects/{project_id}/budget_changes/{id}")
async def delete_budget_change(request: Request) -> Response:
    context = _project(request)
    record = found(BUDGET_CHANGES, context, path_id(request, "id"))
    for line in context.store.line_items(LINE_KIND, context.scope_id, budget_change_id=record["id"]):
        context.store.delete(LINE_KIND, context.scope_id, line["id"])
    context.store.delete(BUDGET_CHANGES.kind, context.scope_id, record["id"])
    context.store.commit()
    return Response(status_code=204)


@router.get("/rest/v2.0/companies/{company_id}/projects/{project_id}/budget_changes/adjustment_line_items")
@v2
async def list_adjustment_line_items(request: Request) -> Response:
    context = _v2_project(request)
    rows = context.store.records(LINE_KIND, context.scope_id)
    rows.sort(key=lambda row: (row["budget_change_id"], row["id"]))
    return _v2_page(request, context, rows, views_changes.adjustment_line_item_summary)


# --- budget modifications (legacy) ---------------------------------------------------------------


def _legacy_tool_only(request: Request) -> Response | None:
    if state_of(request).config.legacy_budget_tool:
        return None
    return JSONResponse({"errors": BUDGET_MODIFICATIONS_OFF}, status_code=405, headers={"Allow": "GET"})


@router.get("/rest/v1.0/projects/{project_id}/budget_modifications")
async def list_budget_modifications(request: Request) -> Response:
    context = _project(request)
    return listed(request, context, BUDGET_MODIFICATIONS.kind, views_changes.budget_modification)


@router.post("/rest/v1.0/projects/{project_id}/budget_modifications")
async def create_budget_modification(request: Request) -> Response:
    if (refusal := _legacy_tool_only(request)) is not None:
        return refusal
    body = await read_json(request)
    context = _project(request)
    record, errors = records.create(BUDGET_MODIFICATIONS, context, _attrs(body, "budget_modification"))
    return saved(record, errors, context, views_changes.budget_modification, 201)


@router.get("/rest/v1.0/projects/{project_id}/budget_modifications/{id}")
async def show_budget_modification(request: Request) -> Response:
    context = _project(request)
    record = found(BUDGET_MODIFICATIONS, context, path_id(request, "id"))
    return JSONResponse(views_changes.budget_modification(context, record))


@router.patch("/rest/v1.0/projects/{project_id}/budget_modifications/{id}")
async def update_budget_modification(request: Request) -> Response:
    if (refusal := _legacy_tool_only(request)) is not None:
        return refusal
    body = await read_json(request)
    context = _project(request)
    modification_id = path_id(request, "id")
    found(BUDGET_MODIFICATIONS, context, modification_id)
    attrs = _attrs(body, "budget_modification")
    record, errors = records.update(BUDGET_MODIFICATIONS, context, modification_id, attrs)
    return saved(record, errors, context, views_changes.budget_modification, 200)


@router.delete("/rest/v1.0/projects/{project_id}/budget_modifications/{id}")
async def delete_budget_modification(request: Request) -> Response:
    if (refusal := _legacy_tool_only(request)) is not None:
        return refusal
    context = _project(request)
    record = found(BUDGET_MODIFICATIONS, context, path_id(request, "id"))
    context.store.delete(BUDGET_MODIFICATIONS.kind, context.scope_id, record["id"])
    context.store.commit()
    return Response(status_code=200)  # Procore documents 200 with no body
