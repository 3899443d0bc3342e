"""Procore's two rate-limit windows, per company.

- **Hourly**: a fixed window of ``hourly_limit`` calls that opens with the first call and closes
  ``hourly_window_s`` later; the next call after that opens a new one.
- **Spike**: a rolling window of ``spike_limit`` calls in any ``spike_window_s``. Procore says its
  spike "Remaining" rises again as the window rolls forward, so it is a sliding log of call times;
  a slot frees when the oldest call in it is ``spike_window_s`` old.

Every admitted call counts in both windows; a refused call (429) counts in neither, so a client
that waits as told is not punished further. The ``X-Rate-Limit-*`` headers describe whichever
window has fewer calls left (on a tie, the one that resets later, which is the safer one to wait
for), matching Procore's "the limit you are likely to hit first".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class QuotaLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    hourly_limit: int = Field(ge=1)
    hourly_window_s: float = Field(gt=0)
    spike_limit: int = Field(ge=1)
    spike_window_s: float = Field(gt=0)


@dataclass(frozen=True)
class QuotaStatus:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    now: float

    def headers(self) -> dict[str, str]:
        headers = {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - self.now))


@dataclass(frozen=True)
class WindowView:
    limit: int
    remaining: int
    reset_at: float


@dataclass
class Usage:
    hourly_start: float | None = None
    hourly_count: int = 0
    spike_calls: deque[float] = field(default_factory=deque)


class Quota:
    def __init__(self, limits: QuotaLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._usage: dict[str, Usage] = {}

    def consume(self, key: str) -> QuotaStatus:
        """Admit and count one call for ``key``, or refuse it without counting."""
        now = self._clock()
        usage = self._refreshed(key, now)
        hourly, spike = self._views(usage, now)
        exhausted = [view for view in (hourly, spike) if view.remaining == 0]
        if exhausted:
            worst = max(exhausted, key=lambda view: view.reset_at)
            return QuotaStatus(False, worst.limit, 0, worst.reset_at, now)
        self._record(usage, now)
        return self._status(*self._views(usage, now), now)

    def peek(self, key: str) -> QuotaStatus:
        """The headers ``key`` would see now, without counting a call (used for /oauth)."""
        now = self._clock()
        return self._status(*self._views(self._refreshed(key, now), now), now)

    def reset(self) -> None:
        self._usage.clear()

    def _refreshed(self, key: str, now: float) -> Usage:
        usage = self._usage.setdefault(key, Usage())
        if usage.hourly_start is not None and now >= usage.hourly_start + self.limits.hourly_window_s:
            usage.hourly_start, usage.hourly_count = None, 0
        while usage.spike_calls and usage.spike_calls[0] <= now - self.limits.spike_window_s:
            usage.spike_calls.popleft()
        return usage

    def _record(self, usage: Usage, now: float) -> None:
        if usage.hourly_start is None:
            usage.hourly_start = now
        usage.hourly_count += 1
        usage.spike_calls.append(now)

    def _views(self, usage: Usage, now: float) -> tuple[WindowView, WindowView]:
        limits = self.limits
        hourly_start = usage.hourly_start if usage.hourly_start is not None else now
        hourly = WindowView(
            limits.hourly_limit,
            max(0, limits.hourly_limit - usage.hourly_count),
            hourly_start + limits.hourly_window_s,
        )
        calls = usage.spike_calls
        # When full, the next slot frees as the call that pushed it to the limit ages out.
        oldest = calls[max(0, len(calls) - limits.spike_limit)] if calls else now
        spike = WindowView(
            limits.spike_limit,
            max(0, limits.spike_limit - len(usage.spike_calls)),
            oldest + limits.spike_window_s,
        )
        return hourly, spike

    @staticmethod
    def _status(hourly: WindowView, spike: WindowView, now: float) -> QuotaStatus:
        closer = min((hourly, spike), key=lambda view: (view.remaining, -view.reset_at))
        return QuotaStatus(True, closer.limit, closer.remaining, closer.reset_at, now)
