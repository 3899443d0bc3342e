"""The sample ERP as a JSON API, for the API source's tests and for trying it out.

``GET /api/{table}`` answers a table of the sample's DuckDB file, with a bearer token, in the
paging style the query asks for: ``page`` and ``per_page`` (1-based) answer
``{"data": [...], "total": N}``; ``offset`` and ``limit`` answer a bare list with the total in
``X-Total-Count``; ``cursor`` (opaque, from ``next_cursor``) and ``limit`` answer
``{"data": [...], "next_cursor": ...}``. ``updated_since`` filters on ``updated_at``;
``sort=updated_at`` lists in that order (else by key). Values are JSON: dates and timestamps as
ISO 8601, decimals as numbers. ``fail_next`` makes the next N requests answer 503, as a flaky
system of record would; ``cap_pages`` makes pages smaller than asked, as APIs with a maximum page
size do; ``requests`` keeps every query received.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response


@dataclass
class SampleApi:
    url: str
    app: FastAPI

    def fail_next(self, count: int) -> None:
        self.app.state.failures = count

    def cap_pages(self, size: int | None) -> None:
        """Answer at most ``size`` records a page whatever the client asks (None: as asked)."""
        self.app.state.max_page = size

    @property
    def requests(self) -> list[dict[str, str]]:
        queries: list[dict[str, str]] = self.app.state.requests
        return queries


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def create_app(erp_path: Path, token: str) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.failures = 0
    app.state.max_page = None
    app.state.requests = []

    def page_size(asked: str | None) -> int:
        size = int(asked or 100)
        return min(size, app.state.max_page) if app.state.max_page else size

    @app.get("/api/{table}")
    async def rows(request: Request, table: str) -> Response:
        app.state.requests.append(dict(request.query_params))
        if app.state.failures > 0:
            app.state.failures -= 1
            return JSONResponse({"error": "try again"}, status_code=503)
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        query = request.query_params
        with duckdb.connect(str(erp_path), read_only=True) as con:
            if not con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone():
                return JSONResponse({"error": f"no table {table}"}, status_code=404)
            order = "updated_at, 1" if request.query_params.get("sort") == "updated_at" else "1"
            cursor = con.execute(f'SELECT * FROM "{table}" ORDER BY {order}')
            names = [column[0] for column in cursor.description]
            records = [{n: _json(v) for n, v in zip(names, row)} for row in cursor.fetchall()]
        if "updated_since" in query:
            since = datetime.fromisoformat(query["updated_since"])
            records = [r for r in records if r.get("updated_at") is None or datetime.fromisoformat(r["updated_at"]) >= since]
        if "page" in query:
            size = page_size(query.get("per_page"))
            start = (int(query["page"]) - 1) * size
            return JSONResponse({"data": records[start : start + size], "total": len(records)})
        if "offset" in query:
            start, size = int(query["offset"]), page_size(query.get("limit"))
            return JSONResponse(records[start : start + size], headers={"X-Total-Count": str(len(records))})
        size = page_size(query.get("limit"))
        start = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        following = start + size
        next_cursor = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(records) else None
        return JSONResponse({"data": records[start:following], "next_cursor": next_cursor})

    return app


@contextmanager
def serve_sample_api(erp_path: Path, token: str) -> Iterator[SampleApi]:
    """The sample ERP's API on a free 127.0.0.1 port, from a background thread."""
    from sandbox.server import run_in_thread

    app = create_app(erp_path, token)
    server, thread, url = run_in_thread(app, "sample-erp-api")
    try:
        yield SampleApi(url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
