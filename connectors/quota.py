"""One quota budget for every flow: a Prefect global concurrency limit used as a rate limit.

Procore counts every call of a company against an hourly window and a 10-second spike window.
All flow runs, in every process and on every worker, draw from one global concurrency limit
with slot decay (a token bucket kept by the Prefect server), so together they stay under both
windows. The HTTP client calls ``rate_limit(name, strict=True)`` before every request; the
header-driven pacing in the client is a second, local brake for when Procore's own figures are
lower than the settings (they are the source of truth).

Waiting for a slot has a limit (``quota_wait_limit_s``; a deployment's own run is given
``quota_defer_after_s`` by the engine, which then defers it): past it, the gate calls its
``on_timeout`` hook (the engine defers the run there) or raises ``QuotaUnavailable``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit

from procore_sync.errors import TransientError
from procore_sync.settings import Settings

logger = logging.getLogger(__name__)

# Use this share of each window, to leave room for calls made outside procore-sync.
HEADROOM = 0.9
SPIKE_WINDOW_S = 10.0
HOUR_S = 3600.0


@dataclass(frozen=True)
class BucketSize:
    """Token bucket: ``limit`` calls at once, refilling at ``per_second``."""

    limit: int
    per_second: float


def bucket_for(per_hour: int, spike_per_10s: int) -> BucketSize:
    """Largest bucket with limit + 10·rate ≤ spike and limit + 3600·rate ≤ hourly (with headroom)."""
    # The steady rate takes 60 % of the spike window and 80 % of the hour; the rest is burst.
    rate = min(spike_per_10s * 0.6 / SPIKE_WINDOW_S, per_hour * 0.8 / HOUR_S)
    room = min(spike_per_10s * HEADROOM - SPIKE_WINDOW_S * rate, per_hour * HEADROOM - HOUR_S * rate)
    return BucketSize(limit=max(1, math.floor(room)), per_second=round(rate, 6))


def ensure_quota_limit(settings: Settings) -> BucketSize:
    """Create or update the shared limit from the settings; safe to call at every start."""
    bucket = bucket_for(settings.quota_per_hour, settings.quota_spike_per_10s)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            name=settings.quota_limit_name,
            limit=bucket.limit,
            slot_decay_per_second=bucket.per_second,
        )
    logger.info(
        "quota budget %r: burst %d, %.2f calls/s (settings: %d/h, %d per 10 s)",
        settings.quota_limit_name,
        bucket.limit,
        bucket.per_second,
        settings.quota_per_hour,
        settings.quota_spike_per_10s,
    )
    return bucket


class QuotaUnavailable(TransientError):
    """No slot of the shared budget came free within the wait's limit."""

    hint = ("other runs are using the shared quota budget, or it refills too slowly: see its global "
            "concurrency limit in the Prefect UI (Concurrency) and the PROCORE_SYNC_QUOTA_* settings; the "
            "next run tries again (raise PROCORE_SYNC_QUOTA_WAIT_LIMIT_S to wait longer).")


class QuotaGate:
    """The ``before_request`` hook: one slot of the shared limit per Procore call.

    Slots are taken from the server a few at a time and spent locally, one per call: a run never
    makes more calls than it took slots, so the shared bound holds, and the Prefect round trip
    (and its occasional stalls of a second or two, measured here) is paid once per chunk instead
    of once per call. At most ``chunk - 1`` slots go unused when a run ends.
    """

    def __init__(self, name: str, chunk: int, *, wait_limit_s: float = 3600.0,
                 on_timeout: Callable[[str], None] | None = None) -> None:
        self.name, self.chunk = name, max(1, chunk)
        self.wait_limit_s, self.on_timeout = wait_limit_s, on_timeout
        self._left = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._left == 0:
                self._acquire()
                self._left = self.chunk
            self._left -= 1

    def _acquire(self) -> None:
        try:
            # strict: a missing limit must stop us, not silently let every call through.
            rate_limit(self.name, occupy=self.chunk, strict=True, timeout_seconds=self.wait_limit_s)
        except TimeoutError as exc:
            message = f"no call of the shared quota budget {self.name!r} came free within {self.wait_limit_s:g} s"
            if self.on_timeout is not None:
                self.on_timeout(message)  # the engine defers a deployment's run here
            raise QuotaUnavailable(message) from exc


def quota_gate(settings: Settings, *, wait_limit_s: float | None = None,
               on_timeout: Callable[[str], None] | None = None) -> QuotaGate | None:
    """The gate for one Procore client, or None when the budget is off; it waits for a slot at
    most ``wait_limit_s`` (default: the settings' ``quota_wait_limit_s``)."""
    if not settings.quota_enabled:
        return None
    bucket = bucket_for(settings.quota_per_hour, settings.quota_spike_per_10s)
    return QuotaGate(settings.quota_limit_name, chunk=min(10, bucket.limit // 4),
                     wait_limit_s=settings.quota_wait_limit_s if wait_limit_s is None else wait_limit_s,
                     on_timeout=on_timeout)
