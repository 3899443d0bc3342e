"""The paging loops (connectors/paging.py) on fetch functions that serve a list from memory:
what each style asks for, and where it stops."""

from __future__ import annotations

from typing import Any

from connectors.paging import Page, chained, numbered, offsets
from tasks.writers import planning_pages

RECORDS = list(range(70))


class Server:
    """Serves ``RECORDS`` in pages of at most ``cap``, recording what each call asked for."""

    def __init__(self, cap: int, *, total: bool = True, per_page: bool = False) -> None:
        self.cap, self.total, self.per_page = cap, total, per_page
        self.asked: list[Any] = []

    def page(self, start: int, asked: Any) -> Page:
        self.asked.append(asked)
        return Page(RECORDS[start:start + self.cap], total=len(RECORDS) if self.total else None,
                    size=self.cap if self.per_page else None)

    def numbered(self, first: int = 1) -> Any:
        return lambda number: self.page((number - first) * self.cap, number)

    def offsets(self) -> Any:
        return lambda offset: self.page(offset, offset)


# --- numbered pages -------------------------------------------------------------------------


def test_numbered_pages_stop_at_the_stated_total_counted_with_the_page_size_the_server_used() -> None:
    # Asked for 100 (Procore's per_page), capped at 30 and said so: 30 + 30 + 10, no fourth call.
    server = Server(30, per_page=True)
    assert list(numbered(server.numbered(), short_is_last=True)) == RECORDS
    assert server.asked == [1, 2, 3]


def test_numbered_pages_counted_by_their_items_when_the_server_states_no_page_size() -> None:
    server = Server(30)
    assert list(numbered(server.numbered())) == RECORDS
    assert server.asked == [1, 2, 3]


def test_a_stated_total_stops_at_a_full_last_page() -> None:
    server = Server(35, per_page=True)
    assert list(numbered(server.numbered(), short_is_last=True)) == RECORDS
    assert server.asked == [1, 2]


def test_without_a_total_a_short_page_is_not_the_end_unless_the_caller_says_so() -> None:
    # An ERP API capping its pages below the size asked: on to the empty page.
    server = Server(30, total=False)
    assert list(numbered(server.numbered())) == RECORDS
    assert server.asked == [1, 2, 3, 4]


def test_without_a_total_a_short_page_ends_where_short_pages_are_the_last() -> None:
    # Resource Planning: 0-based pages of 400; Procore without Total: the size asked or Per-Page.
    server = Server(30, total=False, per_page=True)
    assert list(numbered(server.numbered(first=0), first=0, short_is_last=True)) == RECORDS
    assert server.asked == [0, 1, 2]


def test_an_unpaginated_endpoint_answering_everything_at_once_is_read_once() -> None:
    calls: list[int] = []

    def everything(number: int) -> Page:
        calls.append(number)
        return Page(RECORDS, size=100)  # asked for 100 a page; no Total, no Link

    assert list(numbered(everything, short_is_last=True)) == RECORDS
    assert calls == [1]


def test_an_unpaginated_endpoint_whose_whole_list_fills_a_page_is_read_once_not_forever() -> None:
    # It ignores the page number: every page is the whole list, exactly a page long, so no page
    # is short. Page 2 repeating page 1 ends the list; read on, the loop never ended.
    calls: list[int] = []

    def everything(number: int) -> Page:
        calls.append(number)
        assert len(calls) < 10, "the same list asked for again and again"
        return Page(RECORDS, size=len(RECORDS))

    assert list(numbered(everything, short_is_last=True)) == RECORDS
    assert calls == [1, 2]


def test_a_full_page_without_a_total_reads_on_to_the_empty_page() -> None:
    server = Server(35, total=False, per_page=True)
    assert list(numbered(server.numbered(), short_is_last=True)) == RECORDS
    assert server.asked == [1, 2, 3]


def test_an_empty_page_ends_the_list_whatever_the_total_says() -> None:
    answers = iter([Page([1, 2], total=10, size=2), Page([], total=10, size=2)])
    calls: list[int] = []

    def fetch(number: int) -> Page:
        calls.append(number)
        return next(answers)

    assert list(numbered(fetch, short_is_last=True)) == [1, 2]
    assert calls == [1, 2]


def test_a_page_of_a_linked_list_that_names_no_next_one_is_the_last() -> None:
    calls: list[int] = []

    def fetch(number: int) -> Page:
        calls.append(number)
        return Page([1, 2], last=True, size=2)

    assert list(numbered(fetch, short_is_last=True)) == [1, 2]
    assert calls == [1]


def test_a_page_naming_its_next_hands_over_to_the_links() -> None:
    links = {"p2": Page([3, 4], next="p3"), "p3": Page([5], last=True)}
    numbers: list[int] = []
    followed: list[str] = []

    def fetch(number: int) -> Page:
        numbers.append(number)
        return Page([1, 2], next="p2", total=99, size=2)

    def follow(link: str) -> Page:
        followed.append(link)
        return links[link]

    assert list(numbered(fetch, short_is_last=True, follow=follow)) == [1, 2, 3, 4, 5]
    assert (numbers, followed) == ([1], ["p2", "p3"])


def test_pages_are_fetched_only_as_the_items_are_read() -> None:
    server = Server(30, per_page=True)
    items = numbered(server.numbered())
    assert server.asked == []
    assert next(items) == 0 and server.asked == [1]


# --- offsets --------------------------------------------------------------------------------


def test_offsets_move_by_the_items_read_not_the_size_asked() -> None:
    server = Server(30)
    assert list(offsets(server.offsets())) == RECORDS
    assert server.asked == [0, 30, 60]


def test_offsets_without_a_total_read_on_to_the_empty_page() -> None:
    server = Server(35, total=False)
    assert list(offsets(server.offsets())) == RECORDS
    assert server.asked == [0, 35, 70]


def test_offsets_ignore_a_stated_page_size() -> None:
    # Whatever the server says its page size is, the next page starts after the items it sent.
    server = Server(30, total=False, per_page=True)
    assert list(offsets(server.offsets())) == RECORDS
    assert server.asked == [0, 30, 60, 70]


# --- links and cursors ----------------------------------------------------------------------


def test_chained_pages_follow_each_named_next_from_the_first() -> None:
    pages = {None: Page([1, 2], next="c1"), "c1": Page([3], next="c2"), "c2": Page([4])}
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> Page:
        asked.append(cursor)
        return pages[cursor]

    assert list(chained(fetch)) == [1, 2, 3, 4]
    assert asked == [None, "c1", "c2"]


def test_chained_pages_stop_at_an_empty_cursor_even_on_a_full_page() -> None:
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> Page:
        asked.append(cursor)
        return Page([1, 2], next="", total=100, size=2)

    assert list(chained(fetch)) == [1, 2]
    assert asked == [None]


def test_chained_pages_go_on_past_an_empty_page_that_names_a_next_one() -> None:
    # A cursor API may answer an empty page (everything on it filtered out) with a next cursor.
    pages = {None: Page([], next="c1"), "c1": Page([1])}
    assert list(chained(lambda cursor: pages[cursor])) == [1]


def test_chained_pages_start_where_they_are_told() -> None:
    pages = {"p2": Page([3], next="p3"), "p3": Page([4])}
    assert list(chained(lambda link: pages[link], "p2")) == [3, 4]


# --- the callers' rules -----------------------------------------------------------------------


def test_resource_planning_is_read_in_zero_based_pages_of_400_to_the_short_one() -> None:
    class Client:
        def __init__(self, count: int) -> None:
            self.records, self.asked = [{"id": n} for n in range(count)], []

        def get(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            self.asked.append(params)
            return self.records[params["page"] * 400:(params["page"] + 1) * 400]

    for count, pages in ((401, [0, 1]), (800, [0, 1, 2]), (0, [0])):
        client = Client(count)
        assert list(planning_pages(client, "/people")) == client.records  # type: ignore[arg-type]
        assert client.asked == [{"page": page} for page in pages]
