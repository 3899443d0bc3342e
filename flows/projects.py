"""ERP projects → Procore projects.

Procore asks integrations not to create projects in bulk through the sync endpoint, so a new
project is one POST (after a look-up by origin_id, so a retried create never makes a twin);
changes to known projects go through ``PATCH /rest/v1.0/projects/sync`` in batches.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import CreateEachWriter, SplitWriter, SyncWriter


class ErpProject(ErpRow):
    project_number: str
    name: str | None = None
    address: str | None = None
    city: str | None = None
    state_code: str | None = None
    country_code: str | None = None
    zip: str | None = None
    start_date: date | None = None
    completion_date: date | None = None
    total_value: Decimal | None = None
    active: bool | None = None
    updated_at: datetime | None = None


class ProcoreProject(ProcoreModel):
    name: str
    project_number: str
    address: str | None = None
    city: str | None = None
    state_code: str | None = None
    country_code: str | None = None
    zip: str | None = None
    start_date: date | None = None
    completion_date: date | None = None
    total_value: Decimal | None = None
    active: bool = True


def map_project(project: ErpProject, refs: Refs | None = None) -> Mapped:
    warnings: list[str] = []
    text = fields.clean_text
    country = fields.country_code(text(project.country_code))
    if project.start_date and project.completion_date and project.completion_date < project.start_date:
        raise InvalidRecord("completion_date is before start_date")
    payload = ProcoreProject(
        name=fields.at_most(fields.required(text(project.name), "name"), "name", 255),
        project_number=fields.at_most(project.project_number.strip(), "project_number", 100),
        address=fields.truncated(text(project.address), "address", 255, warnings),
        city=fields.truncated(text(project.city), "city", 255, warnings),
        state_code=fields.state_code(text(project.state_code), country),
        country_code=country,
        zip=fields.truncated(text(project.zip), "zip", 20, warnings),
        start_date=project.start_date,
        completion_date=project.completion_date,
        total_value=project.total_value,
        active=project.active is not False,
    )
    return Mapped(payload=payload, warnings=warnings)


PROJECTS = EntitySpec(
    name="projects",
    webhook_resources=("Projects",),
    title="Projects",
    erp_table="projects",
    erp_model=ErpProject,
    procore_model=ProcoreProject,
    map_record=map_project,
    key_field="project_number",
    target=Target("/rest/v1.0/projects/sync"),
    writer=SplitWriter(
        create=CreateEachWriter("/rest/v1.0/projects", "/rest/v1.0/projects/{id}", "project"),
        update=SyncWriter(),
    ),
    list_path="/rest/v1.1/projects",
    deactivate={"active": False},
)
