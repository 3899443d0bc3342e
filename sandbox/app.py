"""``create_app``: one sandbox instance as a FastAPI application.

The parts are built here from one ``SandboxConfig`` and one clock and shared through
``app.state.sandbox`` (see ``sandbox.state``); the gate middleware wraps the routes. FastAPI's
own documentation routes are switched off: the sandbox exposes Procore's operations and its
``/_sandbox/`` controls, nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from sandbox import (
    admin,
    routes,
    routes_changes,
    routes_company,
    routes_contracts,
    routes_direct_costs,
    routes_planning,
    routes_project,
    routes_webhooks,
)
from sandbox.api_errors import install_error_handlers
from sandbox.auth import TokenRegistry
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector, FaultSettings
from sandbox.gate import Gate
from sandbox.quota import Quota, QuotaLimits
from sandbox.state import SandboxState
from sandbox.store import Store
from sandbox.webhooks import Webhooks


def build_state(
    config: SandboxConfig, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
) -> SandboxState:
    limits = QuotaLimits(
        hourly_limit=config.hourly_limit,
        hourly_window_s=config.hourly_window_s,
        spike_limit=config.spike_limit,
        spike_window_s=config.spike_window_s,
    )
    faults = FaultSettings(
        error_rate=config.error_rate,
        latency_ms=config.latency_ms,
        lost_response_rate=config.lost_response_rate,
        sync_hold_ms=config.sync_hold_ms,
        rate_limit_burst_rate=config.rate_limit_burst_rate,
        rate_limit_burst_s=config.rate_limit_burst_s,
        latency_spike_rate=config.latency_spike_rate,
        latency_spike_ms=config.latency_spike_ms,
    )
    store = Store(clock, config.data_file, companies=(config.company_id,))
    webhooks = Webhooks(config, clock)
    store.on_commit(webhooks.on_commit)  # every committed change may be a webhook event
    if isinstance(clock, ManualClock):
        clock.on_advance(webhooks.wake)  # its deliveries wait for the manual clock, not for time
    return SandboxState(
        config=config,
        clock=clock,
        sleep=sleep,
        store=store,
        tokens=TokenRegistry(config, clock),
        quota=Quota(limits, clock),
        faults=FaultInjector(faults, config.seed),
        webhooks=webhooks,
    )


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """Copy the router's routes onto the app itself.

    Recent FastAPI versions include routers lazily, so ``app.routes`` would list an opaque
    wrapper; adding each route directly keeps ``app.routes`` the plain list of ``APIRoute``
    objects the contract test walks.
    """
    for route in router.routes:
        assert isinstance(route, APIRoute)
        app.add_api_route(route.path, route.endpoint, methods=sorted(route.methods), name=route.name)


def create_app(
    config: SandboxConfig,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FastAPI:
    """A fresh sandbox. ``clock`` drives every time-based rule; ``sleep`` serves added latency."""
    state = build_state(config, clock, sleep)
    app = FastAPI(title="Procore sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.state.config = config
    app.state.store = state.store
    app.state.contract_violations = state.contract_violations
    install_error_handlers(app)
    routers = (
        routes.router,
        routes_company.router,
        routes_project.router,
        routes_contracts.router,
        routes_direct_costs.router,
        routes_changes.router,
        routes_planning.router,
        routes_webhooks.router,
        admin.router,
    )
    for router in routers:
        _add_routes(app, router)
    app.add_middleware(Gate, state=state)
    return app
