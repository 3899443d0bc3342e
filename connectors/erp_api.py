"""An API source: a system of record that serves its tables as JSON over HTTP, in pages.

Described in the settings, per source::

    {"kind": "api", "url": "https://hr.example/api", "paths": {"resource_people": "/employees"},
     "token": "...", "paging": "page", "record_path": "data", "since_param": "updated_since"}

- ``paths`` names each table's list under ``url``; ``token`` (a secret, redacted everywhere) goes
  in ``auth_header`` as ``<auth_scheme> <token>``.
- ``paging``: ``page`` (``page_param`` from ``first_page``, ``size_param`` = ``page_size``),
  ``offset`` (``offset_param`` and ``size_param``), ``cursor`` (the next cursor at
  ``next_cursor_path`` in the body, sent back as ``cursor_param``, until none), or ``none`` (one
  answer). Page and offset paging read on until an empty page, or until as many records as the
  total the server states (``total_path`` in the body, or the ``total_header``): never stop at
  the first short page, since many APIs cap their pages below the size asked and a short page
  then says nothing about the end.
- ``order_params``: query parameters that make the API list in cursor order (e.g.
  ``{"sort": "updated_at"}``), where it allows it: a record changed while the pages are read
  moves to the end, where it is still read, instead of shifting the pages under the reader.
- ``record_path``: where the records are in the body, dotted (``data.items``); empty when the
  body is the list itself.
- ``cursor_field`` is the records' change stamp, copied to ``updated_at`` where named
  otherwise; with ``since_param`` the cursor is sent (ISO 8601) so the server filters, and the
  rows are filtered here too, inclusively, as every source does.

Rows keep the JSON values; each row's ``line`` is its position in the whole answer (1-based),
so messages can point at it. A page that repeats an earlier one (a server that ignores the paging
asked for) and an answer that is not JSON (an HTML login or maintenance page) stop the read with
a message saying what came back. 5xx, 429, timeouts and dropped connections are retried a few times
(tenacity); 401/403 is an authentication error that never shows the token.

``timeout_s`` limits each answer as a whole, from connecting to its last byte: a server that
never answers, and one that answers a byte at a time (each read well within a read timeout),
both end as ``ApiUnavailable`` within about twice ``timeout_s``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
import urllib3
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors import paging
from connectors.erp import CURSOR_COLUMN, SourceRow, cursor_order, parse_timestamp, since_utc
from connectors.paging import Page
from procore_sync.errors import AuthenticationFailed, ConfigError, TransientError
from procore_sync.secrets import reveal
from procore_sync.source_config import ApiSourceConfig


class ApiAuthenticationFailed(AuthenticationFailed):
    hint = "check the API source's token (and auth_header, auth_scheme) in PROCORE_SYNC_SOURCES."


class ApiUnavailable(TransientError):
    hint = "the system of record's API did not answer well; the next run tries again."


# Bytes asked for per read of an answer's body; a read returns what has arrived.
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """One answer of the API: its headers and its whole body, read within the time limit."""

    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes
    status: int


class ApiErpSource:
    def __init__(self, config: ApiSourceConfig) -> None:
        self.config = config
        self.session = requests.Session()
        self._authorized = False  # a token given by reference is resolved at the first request

    def describe(self) -> str:
        return f"API {self.config.url}"

    def close(self) -> None:
        self.session.close()

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        since = since_utc(since)
        path = self.config.paths.get(table)
        if path is None:
            raise ConfigError(f"the API source has no path for {table}; it has: "
                              f"{', '.join(sorted(self.config.paths)) or 'none'}")
        url = self.config.url.rstrip("/") + "/" + path.lstrip("/")
        rows = [SourceRow(self._row(record), line=n,
                          problem=None if isinstance(record, dict) else f"record {n} is not a JSON object")
                for n, record in enumerate(self._records(url, since), start=1)]
        changed = [row for row in rows if since is None or not isinstance(row.data.get(CURSOR_COLUMN), datetime)
                   or row.data[CURSOR_COLUMN] >= since]
        return iter(sorted(changed, key=cursor_order))

    def _row(self, record: Any) -> dict[str, Any]:
        if not isinstance(record, dict):
            return {}
        data = dict(record)
        stamp = data.get(self.config.cursor_field)
        if isinstance(stamp, str) and stamp.strip():
            data[CURSOR_COLUMN] = parse_timestamp(stamp.strip()) or stamp
        return data

    def _records(self, url: str, since: datetime | None) -> Iterator[Any]:
        c = self.config
        base = {c.since_param: since.isoformat()} if c.since_param and since is not None else {}
        base |= c.order_params
        seen: dict[str, int] = {}  # each page's records → its number, to catch a server that repeats

        def counted(params: dict[str, Any]) -> Page:
            answer, body, records = self._page(url, base | params, seen)
            return Page(records, total=self._total(answer, body, url))

        def cursored(cursor: Any) -> Page:
            _, body, records = self._page(url, base | ({} if cursor is None else {c.cursor_param: cursor}), seen)
            return Page(records, next=_at(body, c.next_cursor_path, url, required=False))

        if c.paging == "page":
            yield from paging.numbered(lambda page: counted({c.page_param: page, c.size_param: c.page_size}),
                                       first=c.first_page)
        elif c.paging == "offset":
            yield from paging.offsets(lambda offset: counted({c.offset_param: offset, c.size_param: c.page_size}))
        elif c.paging == "cursor":
            yield from paging.chained(cursored)
        else:
            _, _, records = self._page(url, base, seen)
            yield from records

    def _page(self, url: str, params: dict[str, Any], seen: dict[str, int]) -> tuple[Answer, Any, list[Any]]:
        """One answer, its body and its records, checked: a list, and not an earlier page again."""
        c = self.config
        answer = self._get(url, params)
        body = _json(answer, url)
        records = _at(body, c.record_path, url)
        if not isinstance(records, list):
            raise ConfigError(f"{url}: the records at {c.record_path or 'the top of the body'!r} are not a list")
        _not_repeated(records, seen, url, c.paging)
        return answer, body, records

    def _total(self, answer: Answer, body: Any, url: str) -> int | None:
        """How many records the server says the list has, where the configuration says it does."""
        stated: Any = None
        if self.config.total_header:
            stated = answer.headers.get(self.config.total_header)
        elif self.config.total_path:
            stated = _at(body, self.config.total_path, url, required=False)
        if stated is None:
            return None
        try:
            return int(stated)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{url}: the stated total {stated!r} is not a whole number") from exc

    def _authorize(self) -> None:
        token = reveal(self.config.token)
        if token is not None:
            self.session.headers[self.config.auth_header] = f"{self.config.auth_scheme} {token}".strip()
        self._authorized = True

    def _get(self, url: str, params: dict[str, Any]) -> Answer:
        if not self._authorized:
            self._authorize()
        retrying = Retrying(stop=stop_after_attempt(self.config.max_attempts), reraise=True,
                            wait=wait_exponential(multiplier=0.2, max=5),
                            retry=retry_if_exception_type(ApiUnavailable))
        return retrying(self._get_once, url, params)

    def _get_once(self, url: str, params: dict[str, Any]) -> Answer:
        deadline = time.monotonic() + self.config.timeout_s
        try:
            with self.session.get(url, params=params, timeout=self.config.timeout_s, stream=True) as response:
                self._check(response, url)
                return Answer(response.headers, self._body(response, url, deadline), response.status_code)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ApiUnavailable(f"{url} did not answer: {type(exc).__name__}") from exc

    def _body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        """The whole body, read as it arrives, by ``deadline``: a read timeout alone would let a
        server that sends a byte at a time hold the run forever."""
        chunks: list[bytes] = []
        try:
            while chunk := response.raw.read1(READ_CHUNK, decode_content=True):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise ApiUnavailable(f"{url} did not finish its answer within {self.config.timeout_s:g} s "
                                         f"({sum(map(len, chunks))} bytes so far)")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnavailable(f"{url} did not answer: {type(exc).__name__}") from exc
        return b"".join(chunks)

    def _check(self, response: requests.Response, url: str) -> None:
        """Statuses that end the request before its body is read."""
        if response.status_code in (401, 403):
            raise ApiAuthenticationFailed(f"{url} refused the credentials (HTTP {response.status_code})")
        if response.status_code == 404:
            raise ConfigError(f"{url} does not exist (HTTP 404); check the API source's url and paths")
        if response.status_code == 429 or response.status_code >= 500:
            raise ApiUnavailable(f"{url} answered HTTP {response.status_code}", status=response.status_code)
        if not response.ok:
            excerpt = response.raw.read1(200, decode_content=True).decode("utf-8", "replace")
            raise ConfigError(f"{url} answered HTTP {response.status_code}: {excerpt}")


def _not_repeated(records: list[Any], seen: dict[str, int], url: str, paging: str) -> None:
    """A page with the very records of an earlier one: the server ignores the paging asked for
    (reading on would never end, or read the same records again), so the read stops, loudly."""
    if not records:
        return
    number = len(seen) + 1
    fingerprint = json.dumps(records, sort_keys=True, default=str)
    if fingerprint in seen:
        raise ConfigError(f"{url}: page {number} repeats page {seen[fingerprint]}, so the API does not page as "
                          f"configured (paging {paging!r}); set the source's paging, page or cursor parameters "
                          "to what the API takes in PROCORE_SYNC_SOURCES")
    seen[fingerprint] = number


def _json(answer: Answer, url: str) -> Any:
    try:
        return json.loads(answer.body)
    except ValueError as exc:
        kind = answer.headers.get("Content-Type", "no content type")
        excerpt = _excerpt(answer.body.decode("utf-8", "replace"))
        what = "HTML, not JSON" if "html" in kind.lower() or excerpt.startswith("<") else f"{kind}, not JSON"
        raise ConfigError(f"{url} answered {what} (HTTP {answer.status}): {excerpt!r}; a login or maintenance "
                          "page? check the API source's url and paths, or try again once the API is back",
                          status=answer.status) from exc


def _excerpt(text: str) -> str:
    """An HTML page's title, else its first words: enough to recognise a login or error page."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    shown = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    return " ".join(shown.split())[:120]


def _at(body: Any, dotted: str, url: str, *, required: bool = True) -> Any:
    value = body
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            if not required:
                return None
            raise ConfigError(f"{url}: the answer has no {dotted!r}")
        value = value[part]
    return value
