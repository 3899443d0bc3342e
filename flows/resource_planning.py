"""System of record → Procore Resource Planning (workforce-planning v2): people and projects.

Each has its own template and source (people often come from the HR system, projects from the
ERP; ``connectors.sources``), is keyed by employee number or project number, and names its
groups (regions, divisions) by name: a group Resource Planning does not have fails the record,
naming the groups it has. Resource Planning keeps no origin_id, so the writer matches records by
their number (``PlanningWriter``); its ids are UUIDs.

Procore's update of a Resource Planning project takes only name, status, groups, start date and
time zone: the other project fields are set when the project is created. A later change to one
of them lands as a warning naming it (``PlanningWriter``), never as pushed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, NaturalKey, Target
from tasks.writers import PlanningWriter, planning_pages

PLANNING = "/rest/v1.0/workforce-planning/v2/companies/{company_id}"
INACTIVE = {"status": "inactive"}


def planning_lister(collection: str) -> Any:
    """Reconcile's reader: every record of the collection, dates as they were sent."""
    return lambda client, scope: map(_dates_as_sent, planning_pages(client, f"{PLANNING.format(**scope)}/{collection}"))


def _dates_as_sent(record: dict[str, Any]) -> dict[str, Any]:
    """Resource Planning shows a project's dates as epoch milliseconds; we send ``YYYY-MM-DD``."""
    epoch = {name: record[name] for name in ("start_date", "est_end_date") if isinstance(record.get(name), int)}
    return record | {name: datetime.fromtimestamp(ms / 1000, UTC).date().isoformat() for name, ms in epoch.items()}


def planning_groups(client: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The company's Resource Planning groups by name (case-insensitive), once per run."""
    groups = client.get(f"{PLANNING.format(company_id=context['company_id'])}/groups")
    return {"planning_groups": {str(g["name"]).strip().casefold(): (str(g["name"]), str(g["id"])) for g in groups}}


def group_ids(names: str | None, refs: Refs) -> list[str]:
    """``"North Region; Civil"`` → their ids; at least one, every one known."""
    wanted = [name.strip() for name in (names or "").replace(",", ";").split(";") if name.strip()]
    if not wanted:
        raise InvalidRecord("groups is blank; Resource Planning needs at least one group")
    known: dict[str, tuple[str, str]] = refs.context["planning_groups"]
    unknown = [name for name in wanted if name.casefold() not in known]
    if unknown:
        have = ", ".join(sorted(name for name, _ in known.values())) or "none"
        raise InvalidRecord(f"unknown group {', '.join(map(repr, unknown))}; Resource Planning has: {have}")
    return list(dict.fromkeys(known[name.casefold()][1] for name in wanted))


def _status(value: str | None, allowed: tuple[str, ...]) -> str:
    status = (value or "active").strip().lower()
    if status not in allowed:
        raise InvalidRecord(f"status {value!r} is not one of {', '.join(allowed)}")
    return status


# --- people -----------------------------------------------------------------------------------


class ErpPlanningPerson(ErpRow):
    employee_number: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    status: str | None = None
    groups: str | None = None
    is_assignable: bool | None = None
    hourly_wage: Decimal | None = None
    hired_date: date | None = None
    updated_at: datetime | None = None


class PlanningPerson(ProcoreModel):
    first_name: str
    last_name: str
    is_user: bool = False
    is_assignable: bool
    status: Literal["active", "inactive"]
    group_ids: list[str]
    employee_number: str
    email: str | None = None
    phone: str | None = None
    hourly_wage: Decimal | None = None
    hired_date: date | None = None


def map_person(person: ErpPlanningPerson, refs: Refs) -> Mapped:
    warnings: list[str] = []
    text = fields.clean_text
    payload = PlanningPerson(
        first_name=fields.required(text(person.first_name), "first_name"),
        last_name=fields.required(text(person.last_name), "last_name"),
        is_assignable=person.is_assignable is not False,
        status=_status(person.status, ("active", "inactive")),  # type: ignore[arg-type]
        group_ids=group_ids(person.groups, refs),
        employee_number=person.employee_number.strip(),
        email=fields.email(text(person.email), "email", warnings),
        phone=text(person.phone),
        hourly_wage=person.hourly_wage,
        hired_date=person.hired_date,
    )
    return Mapped(payload=payload, warnings=warnings)


RESOURCE_PEOPLE = EntitySpec(
    name="resource_people",
    title="Resource Planning people",
    erp_table="resource_people",
    erp_model=ErpPlanningPerson,
    procore_model=PlanningPerson,
    map_record=map_person,
    key_field="employee_number",
    target=Target(f"{PLANNING}/people", method="POST", body_scope=()),
    writer=PlanningWriter("people", match="employee_number",
                          update_fields=tuple(f for f in PlanningPerson.model_fields if f != "is_user")),
    list_path=f"{PLANNING}/people",
    list_scope=(),
    uses_origin_id=False,
    prepare=planning_groups,
    lister=planning_lister("people"),
    deactivate=INACTIVE,
    natural_key=NaturalKey("employee number", lambda person, scope: person.get("employee_number"),
                           "Resource Planning keeps one person per employee number"),
)


# --- projects ---------------------------------------------------------------------------------


class ProjectPlace(BaseModel):
    """Where a project is, the same going in and out."""

    address_1: str | None = None
    city_town: str | None = None
    state_province: str | None = None
    zipcode: str | None = None
    country: str | None = None
    timezone: str | None = None


class ErpPlanningProject(ErpRow, ProjectPlace):
    project_number: str
    name: str | None = None
    status: str | None = None
    groups: str | None = None
    start_date: date | None = None
    est_end_date: date | None = None
    updated_at: datetime | None = None


class PlanningProject(ProcoreModel, ProjectPlace):
    name: str
    status: Literal["active", "pending", "inactive"]
    group_ids: list[str]
    project_number: str
    start_date: date | None = None
    est_end_date: date | None = None


def map_planning_project(project: ErpPlanningProject, refs: Refs) -> Mapped:
    text = fields.clean_text
    status = _status(project.status, ("active", "pending", "inactive"))
    if status == "active" and project.start_date is None:
        raise InvalidRecord("start_date is blank; Resource Planning needs a start date for an active project")
    if project.start_date and project.est_end_date and project.est_end_date < project.start_date:
        raise InvalidRecord(f"est_end_date {project.est_end_date} is before start_date {project.start_date}")
    payload = PlanningProject(
        name=fields.required(text(project.name), "name"),
        status=status,  # type: ignore[arg-type]
        group_ids=group_ids(project.groups, refs),
        project_number=project.project_number.strip(),
        start_date=project.start_date,
        est_end_date=project.est_end_date,
        **{name: text(getattr(project, name)) for name in ProjectPlace.model_fields},
    )
    return Mapped(payload=payload)


RESOURCE_PROJECTS = EntitySpec(
    name="resource_projects",
    title="Resource Planning projects",
    erp_table="resource_projects",
    erp_model=ErpPlanningProject,
    procore_model=PlanningProject,
    map_record=map_planning_project,
    key_field="project_number",
    target=Target(f"{PLANNING}/projects", method="POST", body_scope=()),
    writer=PlanningWriter("projects", match="project_number",
                          update_fields=("name", "status", "group_ids", "start_date", "timezone"),
                          update_needs=("name", "status", "group_ids")),
    list_path=f"{PLANNING}/projects",
    list_scope=(),
    uses_origin_id=False,
    prepare=planning_groups,
    lister=planning_lister("projects"),
    deactivate=INACTIVE,
    natural_key=NaturalKey("project number", lambda project, scope: project.get("project_number"),
                           "Resource Planning keeps one project per project number"),
)
