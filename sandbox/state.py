"""Everything one sandbox instance holds, in one place.

``create_app`` builds a ``SandboxState`` and hangs it on ``app.state.sandbox``; routes and the
gate middleware reach it through the request. Its parts are also exposed individually on
``app.state`` (``store``, ``contract_violations``, ...) for tests to inspect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from sandbox.auth import TokenRegistry
from sandbox.config import SandboxConfig
from sandbox.contract import Violation
from sandbox.faults import FaultInjector
from sandbox.quota import Quota
from sandbox.store import Store
from sandbox.webhooks import Webhooks


@dataclass
class SandboxState:
    config: SandboxConfig
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    store: Store
    tokens: TokenRegistry
    quota: Quota
    faults: FaultInjector
    webhooks: Webhooks
    contract_violations: list[Violation] = field(default_factory=list)
    # Projects whose direct cost line item sync is running (Procore answers an overlap with 409).
    running_line_syncs: set[int] = field(default_factory=set)

    def company(self) -> dict[str, object]:
        """The one company the sandbox app is installed in."""
        return {"id": self.config.company_id, "name": self.config.company_name, "is_active": True}


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state
