"""The configuration check of every run: the credentials work and the company is visible.

sync-all makes it once for all its entity runs (``one_company_check``); each run then relies on
it (``checked_company``), and a Procore → ERP run takes Procore's time at the check as its start.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from connectors.procore import ProcoreClient
from connectors.quota import quota_gate
from procore_sync.errors import ConfigError, PermissionDenied
from procore_sync.settings import Settings
from tasks.prefect_run import log_quota_wait


def check_company(client: ProcoreClient, settings: Settings) -> None:
    """The configuration check of every run: the credentials work and the company is visible."""
    try:
        companies = client.companies()
    except PermissionDenied as exc:
        raise ConfigError(
            f"Procore refuses company {settings.company_id} to this service account ({exc.message}); "
            "install the app in that company or fix PROCORE_SYNC_COMPANY_ID."
        ) from exc
    if not any(int(c.get("id", 0)) == settings.company_id for c in companies):
        names = ", ".join(f"{c.get('id')} ({c.get('name')})" for c in companies) or "none"
        raise ConfigError(
            f"company {settings.company_id} is not visible to this service account; "
            f"it sees: {names}. Install the app in that company or fix PROCORE_SYNC_COMPANY_ID."
        )


# Company checks a sync-all made for its entity runs (threads of this process), by Procore and
# company: Procore's time at the check, and how many sync-alls of this process rely on it.
_SHARED_CHECKS: dict[tuple[str, int], datetime | None] = {}
_SHARED_USERS: Counter[tuple[str, int]] = Counter()
_SHARED_LOCK = threading.Lock()


def _check_key(settings: Settings) -> tuple[str, int]:
    return settings.api_base, settings.company_id


@contextmanager
def one_company_check(settings: Settings) -> Iterator[None]:
    """sync-all's configuration check, made once for all its entity runs instead of once each.

    Every run of the entities inside (threads of this process) relies on it: the credentials
    worked and the company was visible a moment ago, and a run that fails on them later still
    stops with the same ``ConfigError`` from its first call. Procore's time at this check stands
    for the start of each Procore → ERP run inside: an earlier start only narrows the window's
    end, and the cursor moves to that earlier time, so the next run reads what came after.
    """
    with ProcoreClient(settings, before_request=quota_gate(settings), on_wait=log_quota_wait,
                       shared_window=True) as client:
        check_company(client, settings)
        checked = client.procore_time
    key = _check_key(settings)
    with _SHARED_LOCK:
        _SHARED_USERS[key] += 1
        _SHARED_CHECKS.setdefault(key, checked)  # the earliest of overlapping sync-alls: the safe one
    try:
        yield
    finally:
        with _SHARED_LOCK:
            _SHARED_USERS[key] -= 1
            if not _SHARED_USERS[key]:
                del _SHARED_USERS[key], _SHARED_CHECKS[key]


def checked_company(client: ProcoreClient, settings: Settings) -> datetime | None:
    """The run's configuration check, unless a sync-all of this process made it for its runs
    (``one_company_check``): Procore's time at the check (None when its answer had no Date)."""
    key = _check_key(settings)
    with _SHARED_LOCK:
        if key in _SHARED_CHECKS:
            return _SHARED_CHECKS[key]
    check_company(client, settings)
    return client.procore_time
