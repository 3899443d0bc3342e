"""Paging, written once: one loop per paging style, over a ``fetch`` that does the asking.

Every list read pages one of three ways: by numbered pages (Procore's ``page``/``per_page``,
Resource Planning's 0-based pages, an ERP API's ``page``), by offset (an ERP API, Prefect's
flow runs), or by following what each answer names as the next page (Procore's
``Link: rel="next"``, an ERP API's cursor). The caller's ``fetch`` asks for one page and answers
a ``Page``: its items and what the server said about the rest; no HTTP happens here. When a list
ends is decided here, the same way for every API:

- an answer that names its next page is followed there; one that names none, where the server
  names them, is the last;
- an empty page is the last, and so is a numbered page that repeats the one before (a server
  that ignores the page number answers its whole list every time);
- a stated total ends the list once the pages read account for it; a page accounts for the size
  the server says it used (Procore's ``Per-Page``: an endpoint may cap it below the size asked,
  and counting with the size asked would stop early and drop records), else for its items;
- without a total, a short page is the last only where the caller says so (an unpaginated
  Procore endpoint answers everything at once, and asking again would fetch the same list
  forever; Resource Planning's pages hold 400): many APIs cap their pages below the size asked,
  and a short page then says nothing about the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Page:
    """One answer of a list: its items and what the server said about the rest."""

    items: list[Any]
    next: Any = None  # the link or cursor of the next page, where the server names it
    last: bool = False  # the server names its pages (a Link header) and named no next one
    total: int | None = None  # how many records the server says the list has
    # The page size the server used (Procore's Per-Page, else the size asked); None where the
    # server does not say (an ERP API may cap its pages silently): the page counts for its items.
    size: int | None = None

    @property
    def counted(self) -> int:
        """How many records of the list this page accounts for."""
        return len(self.items) if self.size is None else self.size

    def ends(self, read: int, short_is_last: bool) -> bool:
        """Whether the list ends here, ``read`` records accounted for with this page."""
        if self.last or not self.items:
            return True
        if self.total is not None:
            return read >= self.total
        return short_is_last and self.size is not None and len(self.items) < self.size


def numbered(
    fetch: Callable[[int], Page], *, first: int = 1, short_is_last: bool = False,
    follow: Callable[[Any], Page] | None = None,
) -> Iterator[Any]:
    """Every item of pages ``first``, ``first + 1``...; a page that names its next one (a Link)
    hands over to ``follow``, which fetches by what the page named. A page that repeats the one
    before ends the list: the server ignores the page number and answers the whole list each
    time (a list that fills a page exactly has no short page to end on)."""
    number, read, last_items = first, 0, None
    while True:
        page = fetch(number)
        if page.items and page.items == last_items:
            return
        last_items = page.items
        yield from page.items
        if page.next and follow is not None:
            yield from chained(follow, page.next)
            return
        read += page.counted
        if page.ends(read, short_is_last):
            return
        number += 1


def offsets(fetch: Callable[[int], Page]) -> Iterator[Any]:
    """Every item of pages asked for by offset, from 0: each page starts after the items read,
    whatever size was asked (servers cap it)."""
    read = 0
    while True:
        page = fetch(read)
        yield from page.items
        read += len(page.items)
        if page.ends(read, short_is_last=False):
            return


def chained(fetch: Callable[[Any], Page], start: Any = None) -> Iterator[Any]:
    """Every item of pages that each name the next one (a ``Link: rel="next"`` URL, a cursor),
    from ``start`` (``None``: the first page) until one names none."""
    where = start
    while True:
        page = fetch(where)
        yield from page.items
        if not page.next:
            return
        where = page.next
