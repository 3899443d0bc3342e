"""Procore's Webhooks API (v1.0): hooks, triggers (one by one and in bulk) and deliveries.

The logic lives in ``sandbox.webhooks``; these handlers find the scope and the hook, check what
is sent and shape the answers as the operations in ``sandbox/openapi/`` publish them. A request
names its scope by ``company_id`` or ``project_id`` (query or body, "one or the other"); a hook
is found only in the scope that owns it, else 404. Refusals are 422 with Rails-style errors.

Where Procore publishes no body schema (bulk triggers), the sandbox takes
``{"company_id", "api_version", "triggers": [{resource_name, event_type}]}`` to create and
``{"company_id", "trigger_ids": [...]}`` to delete, at most 500, and answers
``{"success": [...]}`` (200) or, when some failed, ``{"success": [...], "errors": [...]}`` (207).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from sandbox.answers import JSONResponse
from sandbox.api_errors import ApiError, missing_param, not_found, read_json
from sandbox.auth import CURRENT_ACTOR
from sandbox.scopes import as_int, company_id, path_id
from sandbox.state import SandboxState, state_of
from sandbox.validation import Errors
from sandbox.webhooks import EVENT_TYPES, EXCEPT, PAYLOAD_VERSIONS, RESOURCE_NAMES, Hook, Trigger, Webhooks

router = APIRouter()
HOOKS = "/rest/v1.0/webhooks/hooks"
NAMESPACE = re.compile(r"^[a-z0-9-]+$")
URL = re.compile(r"^https?://[^\s/]+")
MAX_BULK = 500
DEFAULT_PAGE_SIZE = 100
STATUSES = ("any", "successful", "failing", "discarded")
Scope = tuple[int, int | None]  # (company, project or None)


def _scope(state: SandboxState, source: Mapping[str, Any]) -> Scope:
    """The company or project a request names (the project must be the company's)."""
    if source.get("project_id") not in (None, ""):
        project_id = as_int("project_id", source["project_id"])
        if state.store.project(state.config.company_id, project_id) is None:
            raise not_found("Project", project_id)
        return state.config.company_id, project_id
    if source.get("company_id") in (None, ""):
        raise missing_param("company_id")
    return company_id(state, source["company_id"]), None


def _hook(webhooks: Webhooks, scope: Scope, hook_id: int) -> Hook:
    hook = webhooks.hooks.get(hook_id)
    if hook is None or (hook.company_id, hook.project_id) != scope:
        raise not_found("Webhooks::Hook", hook_id)
    return hook


def _hook_errors(attrs: Mapping[str, Any], creating: bool) -> Errors:
    errors: Errors = {}
    checks = (
        ("namespace", lambda v: isinstance(v, str) and NAMESPACE.match(v), "only lowercase letters, digits and dashes"),
        ("destination_url", lambda v: isinstance(v, str) and URL.match(v), "is not a valid URL"),
        ("api_version", lambda v: v in PAYLOAD_VERSIONS, "is not a payload version the sandbox sends (v2.0)"),
        ("destination_headers", lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
         "must be an object of header names and values"),
    )
    for name, valid, message in checks:
        if name not in attrs:
            if creating and name != "destination_headers":
                errors[name] = ["can't be blank"]
        elif not valid(attrs[name]):
            errors[name] = [message]
    return errors


def _hook_attrs(body: Mapping[str, Any]) -> dict[str, Any]:
    attrs = body.get("hook")
    if not isinstance(attrs, dict):
        raise missing_param("hook")
    return attrs


def _trigger(webhooks: Webhooks, hook: Hook, scope: Scope, attrs: Any) -> Trigger | Errors:
    """A new trigger of ``hook``, or what is wrong with ``attrs``."""
    if not isinstance(attrs, dict):
        return {"trigger": ["must be an object"]}
    name, event_type = attrs.get("resource_name"), str(attrs.get("event_type", "")).lower()
    errors: Errors = {}
    if name not in RESOURCE_NAMES.values():
        errors["resource_name"] = ["is not a webhook resource of this scope"]
    if event_type not in EVENT_TYPES:
        errors["event_type"] = ["must be create, update or delete"]
    elif event_type in EXCEPT.get(str(name), ()):
        errors["event_type"] = [f"{event_type} events are not sent for {name}"]
    if errors:
        return errors
    actor = CURRENT_ACTOR.get()
    company, project = scope
    return Trigger(webhooks.new_id(), hook.id, str(name), event_type, None if project else company, project,
                   actor.user_id if actor else None)


# --- hooks -----------------------------------------------------------------------------------


@router.get(HOOKS)
async def list_hooks(request: Request) -> Response:
    state = state_of(request)
    scope, query = _scope(state, request.query_params), request.query_params
    with state.webhooks.lock:
        hooks = [hook.view() for hook in state.webhooks.hooks.values() if (hook.company_id, hook.project_id) == scope
                 and query.get("namespace") in (None, "", hook.namespace)
                 and query.get("api_version") in (None, "", hook.api_version)]
    return JSONResponse(hooks)


@router.post(HOOKS)
async def create_hook(request: Request) -> Response:
    state, body = state_of(request), await read_json(request)
    company, project = _scope(state, body)
    attrs = _hook_attrs(body)
    if errors := _hook_errors(attrs, creating=True):
        return JSONResponse({"errors": errors}, status_code=422)
    actor = CURRENT_ACTOR.get()
    with state.webhooks.lock:
        hook = Hook(state.webhooks.new_id(), company, project, attrs["namespace"], attrs["destination_url"],
                    dict(attrs.get("destination_headers") or {}), attrs["api_version"], actor.user_id if actor else None)
        state.webhooks.add_hook(hook)
        return JSONResponse(hook.view(), status_code=201)


@router.patch(HOOKS + "/{id}")
async def update_hook(request: Request) -> Response:
    state, body = state_of(request), await read_json(request)
    scope, attrs = _scope(state, body), _hook_attrs(body)
    if errors := _hook_errors(attrs, creating=False):
        return JSONResponse({"errors": errors}, status_code=422)
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "id"))
        for name in ("namespace", "destination_url", "api_version"):
            setattr(hook, name, attrs.get(name, getattr(hook, name)))
        if "destination_headers" in attrs:
            hook.destination_headers = dict(attrs["destination_headers"])
        return JSONResponse(hook.view())


@router.delete(HOOKS + "/{id}")
async def delete_hook(request: Request) -> Response:
    state = state_of(request)
    scope = _scope(state, request.query_params)
    with state.webhooks.lock:
        state.webhooks.remove_hook(_hook(state.webhooks, scope, path_id(request, "id")).id)
    return Response(status_code=200)


# --- triggers --------------------------------------------------------------------------------


@router.get(HOOKS + "/{hook_id}/triggers")
async def list_triggers(request: Request) -> Response:
    state = state_of(request)
    scope = _scope(state, request.query_params)
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        triggers = [t.view() for t in state.webhooks.triggers.values() if t.hook_id == hook.id]
    return JSONResponse(triggers)


@router.post(HOOKS + "/{hook_id}/triggers")
async def create_trigger(request: Request) -> Response:
    state, body = state_of(request), await read_json(request)
    scope = _scope(state, body)
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        trigger = _trigger(state.webhooks, hook, scope, body.get("trigger"))
        if not isinstance(trigger, Trigger):
            return JSONResponse({"errors": trigger}, status_code=422)
        state.webhooks.triggers[trigger.id] = trigger
        return JSONResponse(trigger.view(), status_code=201)


@router.delete(HOOKS + "/{hook_id}/triggers/bulk")
async def delete_triggers(request: Request) -> Response:
    state, body = state_of(request), await read_json(request)
    scope, ids = _scope(state, body), _bulk(body, "trigger_ids")
    success, errors = [], []
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        for trigger_id in ids:
            trigger = state.webhooks.triggers.get(trigger_id) if isinstance(trigger_id, int) else None
            if trigger is None or trigger.hook_id != hook.id:
                errors.append({"id": trigger_id, "errors": {"id": ["not found"]}})
            else:
                del state.webhooks.triggers[trigger_id]
                success.append(trigger_id)
    return _bulk_answer(success, errors)


@router.post(HOOKS + "/{hook_id}/triggers/bulk")
async def create_triggers(request: Request) -> Response:
    state, body = state_of(request), await read_json(request)
    scope, items = _scope(state, body), _bulk(body, "triggers")
    success, errors = [], []
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        for attrs in items:
            trigger = _trigger(state.webhooks, hook, scope, attrs)
            if isinstance(trigger, Trigger):
                state.webhooks.triggers[trigger.id] = trigger
                success.append(trigger.view())
            else:
                errors.append({"trigger": attrs, "errors": trigger})
    return _bulk_answer(success, errors)


@router.delete(HOOKS + "/{hook_id}/triggers/{id}")
async def delete_trigger(request: Request) -> Response:
    state = state_of(request)
    scope = _scope(state, request.query_params)
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        trigger_id = path_id(request, "id")
        trigger = state.webhooks.triggers.get(trigger_id)
        if trigger is None or trigger.hook_id != hook.id:
            raise not_found("Webhooks::Trigger", trigger_id)
        del state.webhooks.triggers[trigger_id]
    return Response(status_code=200)


def _bulk(body: Mapping[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or not items:
        raise missing_param(key)
    if len(items) > MAX_BULK:
        raise ApiError(413, {key: [f"is too long (maximum is {MAX_BULK} triggers)"]})
    return items


def _bulk_answer(success: list[Any], errors: list[dict[str, Any]]) -> Response:
    if errors:
        return JSONResponse({"success": success, "errors": errors}, status_code=207)
    return JSONResponse({"success": success})


# --- deliveries ------------------------------------------------------------------------------


@router.get(HOOKS + "/{hook_id}/deliveries")
async def list_deliveries(request: Request) -> Response:
    state, query = state_of(request), request.query_params
    scope = _scope(state, query)
    status = query.get("filters[status]") or "any"
    if status not in STATUSES:
        raise ApiError(400, {"filters[status]": ["is invalid"]})
    size = as_int("page_size", query.get("page_size") or DEFAULT_PAGE_SIZE)
    start = query.get("page_start")
    with state.webhooks.lock:
        hook = _hook(state.webhooks, scope, path_id(request, "hook_id"))
        rows = state.webhooks.listed_deliveries(hook.id, status)
        if start not in (None, ""):
            rows = [row for row in rows if row.id < as_int("page_start", start)]
        return JSONResponse([row.view() for row in rows[:max(size, 1)]])


# --- the sandbox's control of deliveries -----------------------------------------------------


@router.get("/_sandbox/webhooks")
async def get_delivery_settings(request: Request) -> dict[str, Any]:
    return state_of(request).webhooks.settings.model_dump()


@router.put("/_sandbox/webhooks")
async def put_delivery_settings(request: Request) -> Response:
    """Change how deliveries behave (``drop_rate``, ``duplicate_rate``, ``reorder_window``,
    ``timeout_s``); a PUT may name just the ones to change."""
    webhooks = state_of(request).webhooks
    try:
        changed = webhooks.settings.model_validate({**webhooks.settings.model_dump(), **await read_json(request)})
    except ValidationError as error:
        return JSONResponse({"errors": {str(e["loc"][0]): [e["msg"]] for e in error.errors()}}, status_code=422)
    with webhooks.lock:
        webhooks.settings = changed
    return JSONResponse(changed.model_dump())
