"""Error answers in Procore's v1 shapes.

Procore's v1 errors are Rails-style: ``{"errors": "message"}`` for whole-request problems and
``{"errors": {"field": ["message"]}}`` for validation. Routes raise ``ApiError``; the handlers
here also turn FastAPI's own 404/405 and parameter errors into those shapes, so no FastAPI-style
``{"detail": ...}`` body ever leaves the sandbox on a Procore route.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from sandbox.fields import JsonNumber


NOT_INSTALLED = "App is not connected to this company"


class ApiError(Exception):
    def __init__(self, status: int, errors: str | dict[str, list[str]]) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, f"Couldn't find {what} with 'id'={ident}")


def missing_param(name: str) -> ApiError:
    return ApiError(400, f"param is missing or the value is empty: {name}")


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body of ``request``, or a 400 saying what is wrong with it."""
    raw = await request.body()
    try:
        body = json.loads(raw, parse_float=JsonNumber) if raw else {}
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return body


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"errors": exc.errors}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"errors": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _parameter_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # A path id that is not a number names no record, which Procore answers with 404.
    if any(error["loc"][0] == "path" for error in exc.errors()):
        return JSONResponse({"errors": "Not Found"}, status_code=404)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        errors.setdefault(str(error["loc"][-1]), []).append("is invalid")
    return JSONResponse({"errors": errors}, status_code=400)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _parameter_error)
