"""One contract, every ERP source: CSV templates, a DuckDB file, SQL queries and a JSON API (in
each of its paging styles) give the same rows, the same inclusive ``since`` filter, the same
order and the same clear errors. The API runs for real over HTTP (``sample_erp.api``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from connectors.erp import CsvErpSource, DuckDbErpSource, ErpSource
from connectors.erp_api import ApiErpSource
from connectors.erp_query import QueryErpSource
from demo import sample_erp
from procore_sync.errors import ConfigError, TransientError
from demo.sample_erp.api import SampleApi, serve_sample_api
from procore_sync.source_config import ApiSourceConfig, QuerySourceConfig

TOKEN = "erp-api-T0ken-42"
TABLES = ("suppliers", "projects", "employees", "resource_people")
PAGING = {
    "page": {"paging": "page", "record_path": "data", "page_size": 7},
    "offset": {"paging": "offset", "size_param": "limit", "page_size": 7},
    "cursor": {"paging": "cursor", "record_path": "data"},
}


@pytest.fixture(scope="module")
def erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("erp")
    sample_erp.generate(folder, scale=0.1, seed=3)
    return folder


@pytest.fixture(scope="module")
def api(erp: Path) -> Iterator[SampleApi]:
    with serve_sample_api(erp / "erp.duckdb", TOKEN) as running:
        yield running


def api_source(api: SampleApi, style: str, **extra: object) -> ApiErpSource:
    config = {"kind": "api", "url": f"{api.url}/api", "paths": {t: f"/{t}" for t in TABLES}, "token": TOKEN}
    return ApiErpSource(ApiSourceConfig.model_validate(config | PAGING[style] | extra))


SOURCES: dict[str, Callable[[Path, SampleApi], ErpSource]] = {
    "csv": lambda erp, api: CsvErpSource(erp / "templates"),
    "duckdb": lambda erp, api: DuckDbErpSource(erp / "erp.duckdb"),
    "query": lambda erp, api: QueryErpSource(QuerySourceConfig(
        kind="query", path=erp / "erp.duckdb", queries={t: f"SELECT * FROM {t}" for t in TABLES})),
    **{f"api-{style}": (lambda style: lambda erp, api: api_source(api, style))(style) for style in PAGING},
}


@pytest.fixture(params=list(SOURCES))
def source(request: pytest.FixtureRequest, erp: Path, api: SampleApi) -> ErpSource:
    return SOURCES[request.param](erp, api)


def keys_and_stamps(source: ErpSource, table: str, since: datetime | None = None) -> list[tuple[str, datetime]]:
    return [(str(next(iter(row.data.values()))), row.data["updated_at"]) for row in source.read(table, since=since)]


@pytest.mark.parametrize("table", TABLES)
def test_every_source_gives_the_same_rows_in_the_same_order(source: ErpSource, erp: Path, table: str) -> None:
    reference = DuckDbErpSource(erp / "erp.duckdb")
    assert keys_and_stamps(source, table) == keys_and_stamps(reference, table)
    columns = {name for row in reference.read(table) for name in row.data}
    assert {name for row in source.read(table) for name in row.data} == columns


def test_since_is_inclusive_everywhere(source: ErpSource, erp: Path) -> None:
    stamps = sorted(stamp for _, stamp in keys_and_stamps(DuckDbErpSource(erp / "erp.duckdb"), "suppliers"))
    since = stamps[len(stamps) // 2]
    read = keys_and_stamps(source, "suppliers", since)
    assert [stamp for _, stamp in read] == [stamp for stamp in stamps if stamp >= since]
    assert read[0][1] == since


def test_an_unknown_table_is_a_clear_error(source: ErpSource) -> None:
    with pytest.raises(ConfigError, match="payroll"):
        list(source.read("payroll"))


def test_a_query_can_reshape_another_system_s_table(erp: Path) -> None:
    sql = ("SELECT project_number, upper(name) AS name, 'active' AS status, 'Civil' AS groups, "
           "start_date, updated_at FROM projects WHERE active")
    source = QueryErpSource(QuerySourceConfig(kind="query", path=erp / "erp.duckdb",
                                              queries={"resource_projects": sql}))
    rows = list(source.read("resource_projects"))
    assert rows and all(row.data["name"] == row.data["name"].upper() and row.data["groups"] == "Civil" for row in rows)
    broken = QueryErpSource(QuerySourceConfig(kind="query", path=erp / "erp.duckdb",
                                              queries={"resource_projects": "SELECT nope FROM projects"}))
    with pytest.raises(ConfigError, match="the query for resource_projects failed: .*nope"):
        list(broken.read("resource_projects"))


def test_the_api_retries_a_flaky_server_and_never_shows_the_token(api: SampleApi) -> None:
    api.fail_next(2)
    assert len(list(api_source(api, "page").read("projects"))) > 0
    api.fail_next(10)
    with pytest.raises(TransientError, match="HTTP 503"):
        list(api_source(api, "page", max_attempts=2).read("projects"))
    api.fail_next(0)
    with pytest.raises(ConfigError) as refused:
        list(api_source(api, "page", token="wrong-T0ken-77").read("projects"))
    assert "refused the credentials (HTTP 401)" in str(refused.value)
    assert "wrong-T0ken-77" not in str(refused.value)


def test_the_api_token_may_come_from_the_environment(api: SampleApi, monkeypatch: pytest.MonkeyPatch) -> None:
    source = api_source(api, "page", token={"env": "ERP_API_TOKEN"})
    with pytest.raises(ConfigError, match="environment variable ERP_API_TOKEN is not set"):
        list(source.read("projects"))
    monkeypatch.setenv("ERP_API_TOKEN", TOKEN)
    assert len(list(api_source(api, "page", token={"env": "ERP_API_TOKEN"}).read("projects"))) > 0


def test_api_source_pages_to_an_empty_page_or_the_stated_total(api: SampleApi, erp: Path) -> None:
    """A page shorter than asked is not the end (the server may cap its pages): the source reads
    on to an empty page, or stops at the total the server states; and asks for cursor order."""
    reference = keys_and_stamps(DuckDbErpSource(erp / "erp.duckdb"), "suppliers")
    pages = -(-len(reference) // 5)
    api.cap_pages(5)  # fewer than the 7 every style asks for
    try:
        for style in PAGING:
            api.requests.clear()
            assert keys_and_stamps(api_source(api, style), "suppliers") == reference, style
        assert len(api.requests) == pages  # cursor paging: until no next cursor
        api.requests.clear()
        list(api_source(api, "page").read("suppliers"))
        assert len(api.requests) == pages + 1  # no stated total: on to the empty page
        for style, total in (("page", {"total_path": "total"}), ("offset", {"total_header": "X-Total-Count"})):
            api.requests.clear()
            source = api_source(api, style, order_params={"sort": "updated_at"}, **total)
            assert keys_and_stamps(source, "suppliers") == reference, style
            assert len(api.requests) == pages, style  # stopped at the stated total
            assert all(query["sort"] == "updated_at" for query in api.requests)
    finally:
        api.cap_pages(None)
