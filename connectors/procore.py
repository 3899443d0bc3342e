"""The Procore REST client: the only code in procore-sync that speaks HTTP to Procore.

Everything a flow needs from Procore passes through ``ProcoreClient.request``, which adds the
headers Procore requires on every call (bearer token, ``Procore-Company-Id``), paces calls
against the reported quota, and is the tool's one HTTP retry layer (STYLE point 4):

- Only transient failures are retried: 429 (``RateLimited``), 5xx (``ServerError``) and
  timeouts or dropped connections (``ConnectionLost``), at most ``settings.max_attempts``
  attempts in all. A 429 waits for ``Retry-After``, else for ``X-Rate-Limit-Reset``; other
  failures back off exponentially with jitter (capped at 30 s) unless the server sent
  ``Retry-After``. Every wait goes through the injected ``sleep``.
- Resending a write is safe because our writes are sync calls (upserts keyed by ``origin_id``)
  or idempotent PATCH/PUT/DELETE. A plain POST create is not: after a lost connection or a 5xx
  it may have been applied, so ``request`` retries it only when Procore certainly did not apply
  it (429, or the request never left). ``create`` is the retry for that case: before each new
  attempt it looks the record up by its key (the caller's ``look_up``), and a record found is
  the answer, never a second create.
- A 401 fetches a new token and repeats the request once; a second 401 is
  ``AuthenticationFailed``. Everything else maps through ``error_for_status`` to the one error
  tree, with the sanitised URL, status, body excerpt and ``x-request-id``.

Helpers live next door: ``procore_auth`` (tokens), ``procore_pacing`` (quota and stats),
``procore_paging`` (list responses, read page by page by ``paging``), ``procore_http`` (errors
and URL hygiene) and ``procore_batches`` (sync results).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity import wait_exponential_jitter

from connectors import paging
from connectors.paging import Page
from connectors.procore_auth import TokenSource, user_agent
from connectors.procore_batches import (
    MAX_SYNC_BATCH,
    SyncItemError,
    SyncResult,
    batches,
    parse_sync_response,
)
from connectors.procore_http import (
    answer_time,
    error_from_exception,
    error_from_response,
    is_plain_create,
    is_write,
    json_request_body,
    sanitise_path,
    sanitise_url,
    server_retry_at,
)
from connectors.procore_pacing import (
    MAX_QUOTA_WAIT_S,
    BeforeRequest,
    CallStats,
    OnWait,
    Pacer,
    QuotaStatus,
    hour_window,
)
from connectors.procore_paging import json_body, list_page
from procore_sync.errors import (
    ConfigError,
    Conflict,
    ConnectionLost,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    SyncError,
)
from procore_sync.redact import redact
from procore_sync.settings import Settings

__all__ = ["CallStats", "ProcoreClient", "QuotaStatus", "SyncItemError", "SyncResult"]

log = logging.getLogger("connectors.procore")

RETRYABLE = (RateLimited, ServerError, ConnectionLost, Conflict)

BACKOFF_CAP_S = 30.0
# A 413 halves the batch; 1,000 items reach single items in 10 halvings.
MAX_SPLIT_DEPTH = 10


class RunOutOfTime(TimeoutError):
    """The run's time limit passed during a call or a wait of its client (``stop_by``).

    A signal to the engine, not a Procore failure: no layer retries it (it is no ``SyncError``),
    and ``tasks.prefect_run.until_deferred`` turns it into the run's ``RunTimeLimitExceeded``."""


class ProcoreClient:
    """One client per worker (not thread-safe); see the module docstring for the guarantees.

    A ``session`` passed in must not retry by itself (no urllib3 ``Retry`` on its adapters):
    attempts would multiply with ours. It is left open by ``close``; our own session is closed.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        before_request: BeforeRequest | None = None,
        on_wait: OnWait | None = None,
        shared_window: bool = False,
    ) -> None:
        """``shared_window``: this client's calls count in the process's one view of the company's
        hourly window (``HourWindow``), with every other client so made: a run's clients are."""
        self._settings = settings
        self._owns_session = session is None
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._before_request = before_request
        self.stats = CallStats()
        self._tokens = TokenSource(settings, self._session, self.stats, clock)
        # Under the shared budget (before_request) the budget spaces the calls; spreading them
        # again as Procore's window runs low only slowed a sync, so the headers then stop us
        # only when Procore says a window is spent (other applications spent it).
        low_water = 0 if before_request is not None else settings.pacing_low_water
        # With the budget on, its figures are the operator's word on Procore's hour.
        budget = (settings.quota_per_hour, settings.quota_hour_s) if settings.quota_enabled else (None, None)
        hour = hour_window(settings.api_base, settings.client_id, settings.company_id,
                           settings.quota_spike_per_10s, *budget) if shared_window else None
        self._pacer = Pacer(self.stats, low_water=low_water, sleep=sleep, clock=clock, on_wait=on_wait, hour=hour)
        self._backoff = wait_exponential_jitter(initial=1, max=BACKOFF_CAP_S, jitter=1)
        # Per attempt: when the server asked us to come back, and whether the request left.
        self._retry_at: float | None = None
        self._delivered = False
        # Procore's clock at its last answer (its Date header): cursors of what Procore stamps
        # come from it, never from this machine's clock, which may run ahead (tasks/inbound.py).
        self.procore_time: datetime | None = None
        # When the run that owns this client must stop (time.monotonic); None: no limit.
        self._deadline: float | None = None

    # --- public API -------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> requests.Response:
        """Send one logical request (retried as described above); raise ``SyncError`` on failure.

        ``path`` is relative to ``settings.api_base`` (or a full URL under it, as in ``Link``).
        """
        method = method.upper()
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: self._may_retry(exc, method, path)),
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=self._retry_wait,
            sleep=self._wait,
            before_sleep=self._before_retry_sleep,
            retry_error_callback=self._give_up,
        )
        return retrying(self._attempt, method, path, params, json)

    def get(self, path: str, params: dict[str, Any] | None = None, *, exact_numbers: bool = False) -> Any:
        """The decoded answer; ``exact_numbers``: fractions as ``Decimal`` (see ``json_body``)."""
        return json_body(self.request("GET", path, params=params), exact_numbers=exact_numbers)

    def paginate(
        self, path: str, params: dict[str, Any] | None = None, *, per_page: int | None = None,
        exact_numbers: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a list endpoint: by ``Link: rel="next"``, else by ``Total``
        (``exact_numbers`` as for ``get``)."""
        size = per_page or self._settings.per_page

        def page(number: int) -> Page:
            query = {**(params or {}), "page": number, "per_page": size}
            return list_page(self.request("GET", path, params=query), size, exact_numbers=exact_numbers)

        def linked(url: str) -> Page:  # the link carries the whole query
            return list_page(self.request("GET", url), size, exact_numbers=exact_numbers)

        return paging.numbered(page, short_is_last=True, follow=linked)

    def sync(
        self,
        path: str,
        *,
        scope: dict[str, Any],
        items: list[dict[str, Any]],
        method: str = "PATCH",
        batch_size: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> SyncResult:
        """Upsert ``items`` through a Sync Action, ``{**scope, "updates": batch}`` per call.

        Batches hold ``batch_size or settings.batch_size`` items (never more than 1,000).
        Per-item refusals come back in ``SyncResult.errors``; the call itself still succeeded.
        ``params`` is for endpoints that take their scope in the query (e.g. cost_codes/sync).
        """
        result = SyncResult()
        size = min(batch_size or self._settings.batch_size, MAX_SYNC_BATCH)
        for batch in batches(items, size):
            result.extend(self._sync_batch(path, scope, batch, method, params, 0))
        return result

    def create(self, path: str, *, json: Any, look_up: Callable[[], Any]) -> Any:
        """POST one new record, retried for it alone after a 5xx or a lost answer.

        Such a failure may hide a create that landed, so before each new attempt ``look_up``
        (the record by its key: origin_id, an employee number...) says whether it did; found,
        its answer is returned. Attempts and backoff are ``request``'s (``settings.max_attempts``
        in all, the injected sleep); a failure of the look-up itself is not retried here, its
        GET was retried already. Spent, the last error is raised with the attempts it took.
        """
        sent, posting = False, False

        def attempt() -> Any:
            nonlocal sent, posting
            posting = False
            if sent and (found := look_up()) is not None:
                return found
            sent = posting = True
            return json_body(self.request("POST", path, json=json))

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: posting and isinstance(exc, (ServerError, ConnectionLost))),
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=self._retry_wait,
            sleep=self._wait,
            before_sleep=self._before_retry_sleep,
            retry_error_callback=self._create_spent,
        )
        return retrying(attempt)

    def stop_by(self, deadline: float | None) -> None:
        """Every call and wait of this client ends by ``deadline`` (``time.monotonic``).

        The run's time limit lives here, where a run waits, because a limit from outside cannot
        interrupt a blocked read unless it is an alarm signal in the main thread, and a run is not
        always there (sync-all runs entities in threads; a host may hold SIGALRM itself). So each
        request's timeout is the time left when shorter, and ``RunOutOfTime`` ends the run."""
        self._deadline = deadline

    def companies(self) -> list[dict[str, Any]]:
        """The companies where this service account's app is installed."""
        return list(self.paginate("/rest/v1.0/companies"))

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ProcoreClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one attempt ------------------------------------------------------------------------

    def _attempt(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any
    ) -> requests.Response:
        self._retry_at, self._delivered = None, False
        response = self._send(method, path, params, json)
        if response.status_code == 401:
            log.info("Procore answered 401; fetching a new token and trying once more")
            self._tokens.invalidate()
            response = self._send(method, path, params, json)
        if not response.ok:
            raise self._failure(response, method)
        return response

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: Any
    ) -> requests.Response:
        url = self._url(path)
        # Our own encoding, not requests' json=: money goes as exact decimals. Before the pacing:
        # a spike slot counts from the moment it is taken, Procore counts the call when it
        # arrives, and encoding a big batch in between made calls land late (429s).
        body = None if json is None else json_request_body(json)
        # A spent window first: a spike slot of the budget counts from the moment it is taken.
        self._pacer.before_request()
        response: requests.Response | None = None
        over: Callable[[], None] | None = None
        try:
            if self._before_request is not None:
                over = self._before_request()
            headers = self._headers()  # may fetch a token (after a long wait too): before we count the API call
            if body is not None:
                headers["Content-Type"] = "application/json"
            timeout = self._call_timeout()
            self.stats.api_calls += 1
            self.stats.write_calls += is_write(method, url)
            self._delivered = True
            try:
                response = self._session.request(method, url, params=params, data=body,
                                                 headers=headers, timeout=timeout)
            except requests.RequestException as exc:
                self._time_left()  # a wait cut short by the run's limit ends the run, not the call
                raise self._lost(exc, method, url) from None
        finally:
            if over is not None:
                over()
            self._pacer.observe(None if response is None else response.headers,
                                refused=response is not None and response.status_code == 429)
        self.procore_time = answer_time(response.headers) or self.procore_time
        self._log_response(method, response)
        return response

    def _time_left(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RunOutOfTime("the run's time limit passed")
        return left

    def _call_timeout(self) -> float:
        """Procore's limit on a call, or the run's time left when that is shorter."""
        left = self._time_left()
        return self._settings.timeout_s if left is None else min(self._settings.timeout_s, left)

    def _wait(self, seconds: float) -> None:
        """A retry's wait; one that would outlast the run waits out the run's time and ends it."""
        left = self._time_left()
        if left is not None and seconds > left:
            self._sleep(left)
            raise RunOutOfTime("the run's time limit passed")
        self._sleep(seconds)

    def _url(self, path: str) -> str:
        base = self._settings.api_base
        if not path.startswith(("http://", "https://")):
            return base + path
        if not path.startswith(base + "/"):
            # Never hand the bearer token to another host, whatever a Link header says.
            raise ConfigError(f"refusing to call {sanitise_url(path)}: it is not under {base}")
        return path

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._tokens.token()}",
            "Procore-Company-Id": str(self._settings.company_id),
            "Accept": "application/json",
            "User-Agent": user_agent(),
        }

    def _failure(self, response: requests.Response, method: str) -> SyncError:
        now = self._clock()
        self._retry_at = server_retry_at(response, now)
        return error_from_response(response, method, now)

    def _lost(self, exc: requests.RequestException, method: str, url: str) -> SyncError:
        if isinstance(exc, requests.ConnectTimeout):
            self._delivered = False  # no connection was made, so nothing was sent
        log.debug(redact(f"{method} {sanitise_path(url)} -> {type(exc).__name__}"))
        return error_from_exception(exc, method, url, create=is_plain_create(method, url))

    def _log_response(self, method: str, response: requests.Response) -> None:
        remaining = self.stats.quota.remaining
        log.debug(redact(f"{method} {sanitise_path(response.url or '')} -> "
                         f"{response.status_code} (quota {remaining} left)"))

    # --- retry policy -----------------------------------------------------------------------

    def _may_retry(self, exc: BaseException, method: str, path: str) -> bool:
        if not isinstance(exc, RETRYABLE):
            return False
        if isinstance(exc, RateLimited) or not self._delivered:
            return True  # Procore certainly did not apply it
        return not is_plain_create(method, path)

    def _retry_wait(self, state: RetryCallState) -> float:
        if self._retry_at is not None:
            return min(max(self._retry_at - self._clock(), 1.0), MAX_QUOTA_WAIT_S)
        return self._backoff(state)

    def _before_retry_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        delay = state.next_action.sleep if state.next_action else 0.0
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            self._pacer.announce(delay)
            return
        log.warning(redact(f"retrying in {delay:.1f} s (attempt {state.attempt_number + 1} of "
                           f"{self._settings.max_attempts}) after: {exc}"))

    def _give_up(self, state: RetryCallState) -> requests.Response:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(redact(f"giving up after {state.attempt_number} attempts: {exc}"))
        return state.outcome.result()  # type: ignore[union-attr]  # re-raises the last error

    def _create_spent(self, state: RetryCallState) -> Any:
        exc = state.outcome.exception() if state.outcome else None
        assert isinstance(exc, (ServerError, ConnectionLost))
        log.warning(redact(f"giving up a create after {state.attempt_number} attempts: {exc}"))
        raise type(exc)(f"{exc.message} ({state.attempt_number} attempts, the record looked up by its key "
                        "before each new one and not found)", url=exc.url, status=exc.status,
                        body=exc.body) from exc

    def _sync_batch(
        self,
        path: str,
        scope: dict[str, Any],
        batch: list[dict[str, Any]],
        method: str,
        params: dict[str, Any] | None,
        depth: int,
    ) -> SyncResult:
        try:
            response = self.request(method, path, params=params, json={**scope, "updates": batch})
        except PayloadTooLarge:
            if len(batch) < 2 or depth >= MAX_SPLIT_DEPTH:
                raise
            log.info("Procore answered 413 to a batch of %d items; sending it in two halves",
                     len(batch))
            half = len(batch) // 2
            result = self._sync_batch(path, scope, batch[:half], method, params, depth + 1)
            result.extend(self._sync_batch(path, scope, batch[half:], method, params, depth + 1))
            return result
        return parse_sync_response(json_body(response))

