"""Where the ERP data comes from, end to end: CSV templates uploaded to a real SFTP server
(asyncssh, in this process), replace mode and its safety brake, people and projects from two
sources into Resource Planning and Procore core, a one-time upload with broken rows, and the
empty templates. Real Prefect, real sandbox over HTTP, real DuckDB."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.state import StateStore
from demo import sample_erp
from app.runner import run_entities, upload_file
from procore_sync.settings import Settings
from app.templates import write_templates
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.spec import SyncOptions
from tests.conftest import settings_env
from tests.sftp_server import SftpServer, sftp_server

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = SandboxConfig(spike_limit=100_000, hourly_limit=100_000)
PEOPLE = "resource_people"


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company")
    sample_erp.generate(folder, scale=0.2, seed=11)
    return folder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    with sftp_server(tmp_path / "sftp") as running:
        yield running


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(FAST) as running:
        yield running


def template(company: Path, table: str) -> tuple[list[str], list[list[str]]]:
    with (company / "templates" / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def as_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue()


def good_keys(company: Path, table: str) -> list[str]:
    expected = json.loads((company / "expected.json").read_text())[table]
    bad = {item["key"] for item in expected["bad"]}
    return [row[0] for row in template(company, table)[1] if row[0] not in bad]


def people_in_planning(sandbox: SandboxServer) -> dict[str, str]:
    return {p["employee_number"]: p["status"] for p in sandbox.store.records("rp_people")}


def run(*names: str, **options: object) -> dict[str, object]:
    return {s.entity: s for s in run_entities(Settings(), list(names), SyncOptions(**options))}


def test_sftp_uploads_replace_the_truth_within_the_safety_brake(
    company: Path, server: SftpServer, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = {PEOPLE: server.config()}
    settings_env(monkeypatch, sandbox.url, company / "erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_SOURCES=json.dumps(sources))
    header, rows = template(company, PEOPLE)
    good = good_keys(company, PEOPLE)
    before_upload = run(PEOPLE)[PEOPLE]
    assert (before_upload.status, before_upload.created) == ("completed", 0)
    assert "no new upload of resource_people.csv" in before_upload.message

    server.upload(PEOPLE, as_csv(header, rows))
    first = run(PEOPLE)[PEOPLE]
    assert (first.created, first.failed) == (len(good), len(rows) - len(good))
    inactive_in_hr = {row[0] for row in rows if row[0] in good and row[header.index("status")] == "inactive"}
    assert people_in_planning(sandbox) == {key: "inactive" if key in inactive_in_hr else "active" for key in good}

    def inactive() -> set[str]:
        return {key for key, status in people_in_planning(sandbox).items() if status == "inactive"}

    assert not (server.root / f"{PEOPLE}.csv").exists()
    assert [p.name.startswith(f"{PEOPLE}-") for p in (server.root / "archive").iterdir()] == [True]

    gone = next(key for key in good if key not in inactive_in_hr)
    server.upload(PEOPLE, as_csv(header, [row for row in rows if row[0] != gone]))
    second = run(PEOPLE)[PEOPLE]
    assert (second.created, second.updated, second.write_calls) == (0, 1, 1)
    assert inactive() == inactive_in_hr | {gone}
    state = StateStore(Settings().state_path).record_states(PEOPLE)[gone]
    assert state.message == "deactivated: missing from the upload of resource_people.csv"

    leaving = set(good[: len(good) // 2]) | {gone}
    half = [row for row in rows if row[0] not in leaving]
    server.upload(PEOPLE, as_csv(header, half))
    refused = run(PEOPLE)[PEOPLE]
    assert refused.status == "failed" and refused.write_calls == 0
    assert "more than the 20% safety share; nothing was synced" in refused.message
    assert (server.root / f"{PEOPLE}.csv").exists(), "a refused upload stays in the drop"
    assert inactive() == inactive_in_hr | {gone}

    forced = run(PEOPLE, force_deactivation=True)[PEOPLE]
    assert (forced.status, forced.updated) == ("completed", len(leaving - {gone}))
    assert inactive() == inactive_in_hr | leaving

    server.upload(PEOPLE, as_csv(header, rows))  # everyone is back, as the HR system has them
    back = run(PEOPLE)[PEOPLE]
    assert back.updated == len(leaving)
    assert inactive() == inactive_in_hr


def test_people_and_projects_from_two_sources_land_in_planning_and_core(
    company: Path, server: SftpServer, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """People (HR: an SFTP drop) and projects (the ERP's database, through SQL) reach Resource
    Planning and Procore's company users and projects; the same uploads again write nothing."""
    erp = str(company / "erp.duckdb")
    queries = {"projects": "SELECT * FROM projects", "resource_projects": "SELECT * FROM resource_projects"}
    hr = server.config(folder="hr")
    sources = {"employees": hr, PEOPLE: hr, "projects": {"kind": "query", "path": erp, "queries": queries},
               "resource_projects": {"kind": "query", "path": erp, "queries": queries}}
    settings_env(monkeypatch, sandbox.url, tmp_path / "no-erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_SOURCES=json.dumps(sources))
    (server.root / "hr").mkdir()
    names = ("employees", "projects", PEOPLE, "resource_projects")

    def upload_hr() -> None:
        for table in ("employees", PEOPLE):
            header, rows = template(company, table)
            server.upload(f"hr/{table}", as_csv(header, rows))

    upload_hr()
    first = run(*names)
    assert {name: s.status for name, s in first.items()} == dict.fromkeys(names, "completed")
    assert {p["employee_number"] for p in sandbox.store.records("rp_people")} == set(good_keys(company, PEOPLE))
    planned = {p["project_number"] for p in sandbox.store.records("rp_projects")}
    assert planned == set(good_keys(company, "resource_projects"))
    assert {u["employee_id"] for u in sandbox.store.users(1)} == set(good_keys(company, "employees"))
    assert {p["project_number"] for p in sandbox.store.projects(1)} >= planned

    upload_hr()
    again = run(*names)
    assert {name: s.created + s.updated for name, s in again.items()} == dict.fromkeys(names, 0)
    # An upload is read whole, but what landed is unchanged and what Procore refused (a user
    # with an e-mail another user has) is refused unchanged: neither is sent again.
    assert {name: s.write_calls for name, s in again.items()} == dict.fromkeys(names, 0)


def test_a_one_time_upload_syncs_the_good_rows_and_names_each_bad_line(
    company: Path, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, company / "erp.duckdb", tmp_path / "home")
    header, rows = template(company, PEOPLE)
    good = [row for row in rows if row[0] in good_keys(company, PEOPLE)][:5]
    at = {name: header.index(name) for name in ("hired_date", "groups")}
    short = good[1][:-3]
    bad_date = list(good[2])
    bad_date[at["hired_date"]] = "2026-13-45"
    unknown = list(good[3])
    unknown[at["groups"]] = "Offshore"
    twin = list(good[4])
    file = tmp_path / "people.csv"
    file.write_text(as_csv(header, [good[0], short, bad_date, unknown, good[4], twin]), encoding="utf-8")

    summary = upload_file(settings, PEOPLE, file)
    assert (summary.created, summary.failed) == (1, 4)  # the two twin rows are one record
    assert summary.cursor_after is None, "a one-time upload leaves the usual source's cursor"
    assert summary.message == f"one-time upload of {file.resolve()}"
    states = StateStore(settings.state_path).record_states(PEOPLE)
    messages = {key: states[key].message for key in (good[1][0], good[2][0], good[3][0], good[4][0])}
    assert messages[good[1][0]].startswith(f"line 3: {len(header) - 3} cells, but the header has {len(header)}")
    assert messages[good[2][0]].startswith("line 4: hired_date:")
    assert messages[good[3][0]].startswith("line 5: unknown group 'Offshore'; Resource Planning has: Civil, ")
    assert messages[good[4][0]] == (f"duplicate employee_number {good[4][0]}: the ERP has it on lines 6, 7; "
                                    "make the key unique in the ERP, then resync")
    assert set(people_in_planning(sandbox)) == {good[0][0]}
    missing = run(PEOPLE, upload_file=str(tmp_path / "gone.csv"))[PEOPLE]
    assert missing.status == "failed" and "gone.csv does not exist on the machine that runs the flow" in missing.message


def test_empty_templates_have_the_documented_columns(company: Path, tmp_path: Path) -> None:
    written = write_templates(tmp_path / "templates")
    docs = (Path(__file__).parent.parent / "docs" / "erp-templates.md").read_text()
    for path in written:
        header = path.read_text(encoding="utf-8").strip().split(",")
        assert header == template(company, path.stem)[0], path.name
        assert f"{path.stem}.csv" in docs or f"`{path.stem}`" in docs, f"{path.name} is not documented"
    assert {path.stem for path in written} >= {"suppliers", "employees", PEOPLE, "resource_projects"}


def test_an_upload_with_a_broken_line_deactivates_nothing(
    company: Path, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote left open swallows the lines after it: the records on them look missing from the
    upload, so an upload with broken lines never deactivates on its word."""
    drop = tmp_path / "drop"
    drop.mkdir()
    settings_env(monkeypatch, sandbox.url, company / "erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_SOURCES=json.dumps({PEOPLE: {"kind": "folder", "folder": str(drop)}}))
    header, rows = template(company, PEOPLE)
    good = [row for row in rows if row[0] in good_keys(company, PEOPLE) and row[header.index("status")] == "active"]

    def upload(text: str) -> object:
        (drop / f"{PEOPLE}.csv").write_text(text, encoding="utf-8")
        (drop / f"{PEOPLE}.csv.done").write_text("")
        return run(PEOPLE)[PEOPLE]

    assert upload(as_csv(header, good)).created == len(good)
    # One person left the HR system; a quote left open on the line in their place swallows the
    # last two people.
    open_quote = ["E-99999", '"Open, quote'] + [""] * (len(header) - 2)
    broken = as_csv(header, good[:-3]) + ",".join(open_quote) + "\n" + as_csv(header, good[-2:]).split("\n", 1)[1]
    second = upload(broken)
    assert (second.status, second.updated, second.failed) == ("completed", 0, 1)
    assert f"3 record(s) missing from the upload were not deactivated: line(s) {len(good) - 1} of" in second.message
    assert set(people_in_planning(sandbox).values()) == {"active"}
