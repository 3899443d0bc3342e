"""Switchable failures, drawn from a seeded random generator.

Knobs set in the config and changed at run time through ``PUT /_sandbox/faults``:

- ``error_rate``: share of /rest/ calls answered 503 (with ``Retry-After: 1``) or 500 instead of
  being handled; nothing is read or written.
- ``latency_ms``: delay added before every /rest/ call is handled.
- ``lost_response_rate``: share of /rest/ calls that are handled completely (a write is
  committed) and whose answer is then cut off mid-body, so the client sees a broken connection
  and cannot know whether its write landed. This is the case idempotent sync by ``origin_id``
  exists for.
- ``sync_hold_ms``: how long a direct cost line item sync holds its project's "sync running"
  mark before doing its work (see ``sandbox.routes_direct_costs``), so a test can make two
  syncs overlap for certain and see the second one refused with 409.

- ``rate_limit_burst_rate`` and ``rate_limit_burst_s``: share of /rest/ calls that open a burst
  of 429s lasting ``rate_limit_burst_s`` seconds on the sandbox's clock (the call itself is the
  first refused). Every call within the burst is answered as Procore answers a spent quota:
  429, ``Retry-After`` with the seconds left, ``X-Rate-Limit-Remaining: 0`` and
  ``X-Rate-Limit-Reset`` at the burst's end; nothing is read, written or counted. This is what
  another integration of the same company spending the quota looks like from here.
- ``latency_spike_rate`` and ``latency_spike_ms``: share of /rest/ calls delayed by a spike of
  ``latency_spike_ms`` on top of ``latency_ms`` (a slow database, a long GC pause).

Every /rest/ call that reaches the fault stage draws the same three numbers whatever the
settings, so with a given seed the n-th call always meets the same fate. Bursts and spikes draw
from a second generator of their own, so switching them on leaves those fates as they were.

``aimed`` faults are for tests that need one operation to fail for certain: the next ``times``
calls of ``method`` ``path`` (exactly) meet ``fault`` instead of their draw; a rule is gone once
spent, and the first rule of the list with calls left wins.
"""

from __future__ import annotations

import random
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AimedFault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str
    path: str
    fault: Literal["unavailable", "server_error", "lost_response"]
    times: int = Field(default=1, ge=1)


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0)
    lost_response_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sync_hold_ms: int = Field(default=0, ge=0)
    rate_limit_burst_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    rate_limit_burst_s: int = Field(default=2, ge=1)
    latency_spike_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_spike_ms: int = Field(default=0, ge=0)
    aimed: list[AimedFault] = Field(default_factory=list)


class Fault(Enum):
    NONE = "none"
    SERVER_ERROR = "server_error"  # 500
    UNAVAILABLE = "unavailable"  # 503 with Retry-After
    LOST_RESPONSE = "lost_response"


class FaultInjector:
    def __init__(self, settings: FaultSettings, seed: int) -> None:
        self.settings = settings
        self._seed = seed
        self._rng = random.Random(seed)
        self._weather = random.Random(f"weather:{seed}")  # bursts and spikes
        self._burst_until = float("-inf")

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Merge ``changes`` into the settings; raises pydantic's ValidationError when invalid."""
        self.settings = FaultSettings.model_validate({**self.settings.model_dump(), **changes})
        return self.settings

    def draw(self, method: str = "", path: str = "") -> Fault:
        error, lost, kind = self._rng.random(), self._rng.random(), self._rng.random()
        if aimed := self._aimed(method, path):
            return Fault(aimed)
        if error < self.settings.error_rate:
            return Fault.UNAVAILABLE if kind < 0.5 else Fault.SERVER_ERROR
        if lost < self.settings.lost_response_rate:
            return Fault.LOST_RESPONSE
        return Fault.NONE

    def _aimed(self, method: str, path: str) -> str | None:
        """The fault of the first aimed rule for this call with calls left (and one call less)."""
        for rule in self.settings.aimed:
            if rule.method.upper() == method.upper() and rule.path == path:
                rule.times -= 1
                if rule.times == 0:
                    self.settings.aimed.remove(rule)
                return rule.fault
        return None

    def rate_limited_until(self, now: float) -> float | None:
        """The end of the 429 burst this call falls in (one may open now), or None."""
        if now < self._burst_until:
            return self._burst_until
        if self._weather.random() < self.settings.rate_limit_burst_rate:
            self._burst_until = now + self.settings.rate_limit_burst_s
            return self._burst_until
        return None

    def latency_s(self) -> float:
        """The delay to add before this call: the steady latency, plus a spike now and then."""
        spike = self._weather.random() < self.settings.latency_spike_rate
        return (self.settings.latency_ms + (self.settings.latency_spike_ms if spike else 0)) / 1000

    def reseed(self) -> None:
        self._rng = random.Random(self._seed)
        self._weather = random.Random(f"weather:{self._seed}")
        self._burst_until = float("-inf")
