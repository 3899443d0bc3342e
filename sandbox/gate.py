"""The gate every Procore call passes before (and after) its route: a pure ASGI middleware.

For ``/rest/...`` calls, in this order, as Procore's edge does:

1. contract check of the request (recorded in ``contract_violations``, never refused);
2. quota: a call within a 429 burst (``sandbox.faults``) or past the hourly or spike limit gets
   429 and is not counted; any other call is counted, whatever its outcome (401, 403 and 404
   included);
3. bearer token (401), then the ``Procore-Company-Id`` header: 400 when missing (except on
   ``GET /rest/v1.0/companies``), 403 when it names a company the app is not installed in;
4. faults: added latency (and its spikes), a 500/503 instead of the route, or a lost response;
5. the route, with ``X-Rate-Limit-*`` headers added to whatever it answers.

Every answer, whatever its path, carries ``Date`` from the sandbox's clock, as Procore's carry
Procore's time: procore-sync takes the Procore → ERP cursor from it.

``/oauth/...`` calls get the contract check and the rate-limit headers (of the configured
company, peeked, not counted): token requests are outside the API quota. Everything else (the
``/_sandbox/`` control routes) passes straight through.

A lost response is made real at the socket: the route runs to completion (its write is
committed), then the gate sends the status line and headers with a ``Content-Length`` larger
than the body, sends half the body and returns. The server closes the connection, so a client
such as ``requests`` raises ``ChunkedEncodingError`` (or ``ConnectionError``), exactly what it
sees when a network drops an answer.
"""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.api_errors import NOT_INSTALLED
from sandbox.auth import CURRENT_ACTOR, TokenState
from sandbox.contract import Violation, query_dict, validate_request
from sandbox.faults import Fault
from sandbox.quota import QuotaStatus
from sandbox.state import SandboxState

COMPANY_HEADER = "Procore-Company-Id"
COMPANY_OPTIONAL = {("GET", "/rest/v1.0/companies")}
TOO_MANY = "You have surpassed the max number of requests for an hour. Please wait until your limit resets."
TOKEN_PROBLEMS = {
    TokenState.MISSING: "The access token is missing",
    TokenState.UNKNOWN: "The access token is invalid",
    TokenState.EXPIRED: "The access token expired",
}


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the already-read body to the route."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            for name, value in extra.items():
                headers[name] = value
        await send(message)

    return wrapped


def _parsed_body(scope: Scope, body: bytes) -> Any:
    if not body:
        return None
    content_type = Headers(scope=scope).get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


async def _lose_response(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    start: Message = {}
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)  # the route runs to completion: its write is committed
    body = b"".join(chunks)
    headers = MutableHeaders(raw=list(start.get("headers", [])))
    headers["content-length"] = str(len(body) + 1024)  # promise more than will ever come
    await send({**start, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    # Returning with the body unfinished makes the server drop the connection.


class Gate:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path:
            # Every answer carries Procore's time (HTTP Date), here the sandbox's clock, which
            # stamps the records too; the server's own Date header is switched off (server.py).
            send = _with_headers(send, {"Date": formatdate(self.state.clock(), usegmt=True)})
        if path.startswith("/rest/"):
            await self._rest(scope, receive, send)
        elif path.startswith("/oauth/"):
            await self._oauth(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _oauth(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        self._check_contract(scope, body)
        peeked = self.state.quota.peek(f"company:{self.state.config.company_id}")
        await self.app(scope, _replay(body), _with_headers(send, peeked.headers()))

    async def _rest(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        receive = _replay(body)
        self._check_contract(scope, body)
        headers = Headers(scope=scope)
        burst_until = self.state.faults.rate_limited_until(self.state.clock())
        if burst_until is not None:  # a 429 burst is the quota's answer: before it, uncounted
            await self._rate_limited(burst_until)(scope, receive, send)
            return
        status = self.state.quota.consume(self._quota_key(headers))
        send = _with_headers(send, status.headers())
        refusal = self._refusal(scope, headers) if status.allowed else PlainTextResponse(TOO_MANY, 429)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        # Who the route's changes are made by, for their webhook events (same task: the route sees it).
        CURRENT_ACTOR.set(self.state.tokens.actor(headers.get("authorization")))
        await self._with_faults(scope, receive, send)

    def _rate_limited(self, until: float) -> Response:
        now = self.state.clock()
        limit = self.state.quota.limits.spike_limit
        spent = QuotaStatus(False, limit, 0, until, now)
        return PlainTextResponse(TOO_MANY, 429, headers=spent.headers())

    async def _with_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.state.faults.draw(scope["method"], scope["path"])
        latency_s = self.state.faults.latency_s()
        if latency_s:
            await self.state.sleep(latency_s)
        if fault is Fault.UNAVAILABLE:
            unavailable = JSONResponse({"errors": "Service Unavailable"}, 503, headers={"Retry-After": "1"})
            await unavailable(scope, receive, send)
        elif fault is Fault.SERVER_ERROR:
            await JSONResponse({"errors": "Internal Server Error"}, 500)(scope, receive, send)
        elif fault is Fault.LOST_RESPONSE:
            await _lose_response(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _quota_key(self, headers: Headers) -> str:
        # Procore budgets a DMSA per company; a call naming no company is budgeted per token.
        company = headers.get(COMPANY_HEADER)
        return f"company:{company.strip()}" if company else f"token:{headers.get('authorization', '')}"

    def _refusal(self, scope: Scope, headers: Headers) -> Response | None:
        token_state = self.state.tokens.check(headers.get("authorization"))
        if token_state is not TokenState.VALID:
            problem = TOKEN_PROBLEMS[token_state]
            challenge = f'Bearer realm="Doorkeeper", error="invalid_token", error_description="{problem}"'
            return JSONResponse({"errors": problem}, 401, headers={"WWW-Authenticate": challenge})
        company = (headers.get(COMPANY_HEADER) or "").strip()
        if not company:
            optional = (scope["method"], scope["path"]) in COMPANY_OPTIONAL
            return None if optional else JSONResponse({"errors": f"Missing {COMPANY_HEADER} header!"}, 400)
        if company != str(self.state.config.company_id):
            return JSONResponse({"errors": NOT_INSTALLED}, 403)
        return None

    def _check_contract(self, scope: Scope, body: bytes) -> None:
        if not self.state.config.validate_requests:
            return
        method, path = scope["method"], scope["path"]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = query_dict(parse_qsl(raw_query, keep_blank_values=True))
        for message in validate_request(method, path, query, _parsed_body(scope, body)):
            self.state.contract_violations.append(Violation(method, path, message))
