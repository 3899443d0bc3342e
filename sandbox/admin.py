"""Control routes under ``/_sandbox/``: the only routes that are not Procore operations.

They need no token, count against no quota and never fail by fault injection, so a test or the
demo can always reach them:

- ``GET|PUT /_sandbox/faults``: read or change ``error_rate``, ``latency_ms``,
  ``lost_response_rate``, ``sync_hold_ms``, the 429 bursts and latency spikes, and the
  ``aimed`` faults (a PUT may name just the ones to change; see ``sandbox.faults``).
- ``GET|PUT /_sandbox/quota``: read or change the four quota limits (same partial PUT); counts
  already made stay.
- ``GET|PUT /_sandbox/webhooks``: how webhook deliveries behave (``sandbox.routes_webhooks``).
- ``POST /_sandbox/reset``: wipe every record (vendors, projects and everything in them; webhook
  hooks, triggers and deliveries; the
  company's standard cost code list is seeded again, with a new id), quota counts and recorded
  contract violations, and restart the fault generator from its seed. Issued tokens stay valid,
  so a client keeps going.
- ``GET /_sandbox/contract_violations``: what ``sandbox.contract`` found wrong in the requests so
  far, for a sandbox running in another process.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from sandbox.api_errors import read_json
from sandbox.quota import QuotaLimits
from sandbox.state import state_of

router = APIRouter(prefix="/_sandbox")


def _invalid(error: ValidationError) -> Response:
    errors: dict[str, list[str]] = {}
    for problem in error.errors():
        errors.setdefault(".".join(map(str, problem["loc"])) or "body", []).append(problem["msg"])
    return JSONResponse({"errors": errors}, status_code=422)


@router.get("/faults")
async def get_faults(request: Request) -> dict[str, Any]:
    return state_of(request).faults.settings.model_dump()


@router.put("/faults")
async def put_faults(request: Request) -> Response:
    faults = state_of(request).faults
    try:
        settings = faults.update(await read_json(request))
    except ValidationError as error:
        return _invalid(error)
    return JSONResponse(settings.model_dump())


@router.get("/quota")
async def get_quota(request: Request) -> dict[str, Any]:
    return state_of(request).quota.limits.model_dump()


@router.put("/quota")
async def put_quota(request: Request) -> Response:
    quota = state_of(request).quota
    try:
        quota.limits = QuotaLimits.model_validate({**quota.limits.model_dump(), **await read_json(request)})
    except ValidationError as error:
        return _invalid(error)
    return JSONResponse(quota.limits.model_dump())


@router.post("/reset")
async def reset(request: Request) -> dict[str, bool]:
    state = state_of(request)
    state.store.reset()
    state.store.commit()
    state.store.flush()  # a reset is rare and must be on disk at once
    state.quota.reset()
    state.faults.reseed()
    state.contract_violations.clear()
    state.webhooks.reset()
    return {"reset": True}


@router.get("/contract_violations")
async def contract_violations(request: Request) -> list[dict[str, str]]:
    return [violation._asdict() for violation in state_of(request).contract_violations]
