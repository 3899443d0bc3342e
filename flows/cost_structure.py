"""The cost structure: standard cost codes, cost types, sub jobs, project cost codes, WBS codes.

Everything money-shaped in Procore hangs off these: budget lines, contract and commitment
lines and direct cost lines all point at a WBS code (sub job . cost code . cost type) of their
project. Company-level codes and types sync once per company; sub jobs, project cost codes and
WBS codes once per project, in one call each. A project's template cost codes (created with the
project, without origin_id) are linked, not duplicated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.procore import ProcoreClient
from flows.projects import PROJECTS
from procore_sync.errors import ConfigError, InvalidRecord
from procore_sync.settings import Settings
from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, NaturalKey, Target
from tasks.writers import KeyedBatchWriter, SyncWriter

BASE_TYPES = ("equipment", "materials", "commitment", "owner_cost", "professional_services", "other")


def wbs_key(project: str, sub_job: str | None, cost_code: str, cost_type: str) -> str:
    """The ERP key of a WBS code, as the ERP's wbs_codes table writes it."""
    parts = [project, sub_job, cost_code, cost_type] if sub_job else [project, cost_code, cost_type]
    return "|".join(str(p).strip() for p in parts)


# --- standard cost codes (company) ----------------------------------------------------------


class ErpCostCode(ErpRow):
    cost_code: str
    name: str | None = None
    updated_at: datetime | None = None


class ProcoreStandardCostCode(ProcoreModel):
    code: str
    name: str


def map_standard_cost_code(row: ErpCostCode, refs: Refs | None = None) -> Mapped:
    name = fields.at_most(fields.required(fields.clean_text(row.name), "name"), "name", 255)
    return Mapped(payload=ProcoreStandardCostCode(code=fields.at_most(row.cost_code.strip(), "cost_code", 100), name=name))


def standard_list(client: ProcoreClient, context: dict[str, Any]) -> dict[str, int]:
    """The company's standard cost code list the codes belong to (its first one)."""
    lists = list(client.paginate("/rest/v1.0/standard_cost_code_lists", {"company_id": context["company_id"]}))
    if not lists:
        raise ConfigError("the company has no standard cost code list in Procore; create one in Company Admin")
    return {"standard_cost_code_list_id": int(lists[0]["id"])}


STANDARD_COST_CODES = EntitySpec(
    name="standard_cost_codes",
    webhook_resources=("Standard Cost Codes",),
    title="Standard cost codes",
    erp_table="standard_cost_codes",
    erp_model=ErpCostCode,
    procore_model=ProcoreStandardCostCode,
    map_record=map_standard_cost_code,
    key_field="cost_code",
    target=Target("/rest/v1.0/standard_cost_codes/sync", body_scope=("company_id", "standard_cost_code_list_id")),
    writer=SyncWriter(),
    list_path="/rest/v1.0/standard_cost_codes",
    list_scope=("company_id", "standard_cost_code_list_id"),
    prepare=standard_list,
)


# --- cost types (line item types, company) --------------------------------------------------


class ErpCostType(ErpRow):
    cost_type: str
    name: str | None = None
    base_type: str | None = None
    updated_at: datetime | None = None


class ProcoreCostType(ProcoreModel):
    name: str
    csv_import_code: str
    base_type: str


def map_cost_type(row: ErpCostType, refs: Refs | None = None) -> Mapped:
    base = (row.base_type or "other").strip().lower()
    if base not in BASE_TYPES:
        raise InvalidRecord(f"base_type {row.base_type!r} is not one of {', '.join(BASE_TYPES)}")
    name = fields.at_most(fields.required(fields.clean_text(row.name), "name"), "name", 255)
    return Mapped(payload=ProcoreCostType(name=name, csv_import_code=row.cost_type.strip(), base_type=base))


COST_TYPES = EntitySpec(
    name="cost_types",
    webhook_resources=("Line Item Types",),
    title="Cost types",
    erp_table="cost_types",
    erp_model=ErpCostType,
    procore_model=ProcoreCostType,
    map_record=map_cost_type,
    key_field="cost_type",
    target=Target("/rest/v1.0/line_item_types/sync"),
    writer=SyncWriter(),
    list_path="/rest/v1.0/line_item_types",
    read_as={"csv_import_code": "code"},
)


# --- sub jobs (project) ---------------------------------------------------------------------


class ErpSubJob(ErpRow):
    sub_job_key: str
    project_number: str | None = None
    sub_job_code: str | None = None
    name: str | None = None
    updated_at: datetime | None = None


class ProcoreSubJob(ProcoreModel):
    code: str
    name: str


def map_sub_job(row: ErpSubJob, refs: Refs) -> Mapped:
    project_id = refs.id(PROJECTS, row.project_number, f"project {row.project_number}")
    code = fields.required(fields.clean_text(row.sub_job_code), "sub_job_code")
    name = fields.at_most(fields.required(fields.clean_text(row.name), "name"), "name", 255)
    return Mapped(payload=ProcoreSubJob(code=code, name=name), scope={"project_id": project_id})


SUB_JOBS = EntitySpec(
    name="sub_jobs",
    webhook_resources=("Sub Jobs",),
    title="Sub jobs",
    erp_table="sub_jobs",
    erp_model=ErpSubJob,
    procore_model=ProcoreSubJob,
    map_record=map_sub_job,
    key_field="sub_job_key",
    target=Target("/rest/v1.0/sub_jobs/sync", body_scope=("project_id",), query_scope=("project_id",)),
    writer=SyncWriter(),
    list_path="/rest/v1.0/sub_jobs",
    list_scope=("project_id",),
    parents=(PROJECTS,),
)


# --- project cost codes ---------------------------------------------------------------------


class ErpProjectCostCode(ErpRow):
    project_cost_code_key: str
    project_number: str | None = None
    cost_code: str | None = None
    updated_at: datetime | None = None


class ProcoreCostCode(ProcoreModel):
    code: str
    name: str
    standard_cost_code_id: int


def map_project_cost_code(row: ErpProjectCostCode, refs: Refs) -> Mapped:
    project_id = refs.id(PROJECTS, row.project_number, f"project {row.project_number}")
    what = f"cost code {row.cost_code}"
    standard = refs.erp_row(STANDARD_COST_CODES, row.cost_code, what)
    standard_id = refs.id(STANDARD_COST_CODES, row.cost_code, what)
    name = fields.clean_text(standard.get("name")) or str(row.cost_code)
    payload = ProcoreCostCode(code=str(row.cost_code).strip(), name=name, standard_cost_code_id=standard_id)
    return Mapped(payload=payload, scope={"project_id": project_id})


PROJECT_COST_CODES = EntitySpec(
    name="project_cost_codes",
    webhook_resources=("Cost Codes",),
    title="Project cost codes",
    erp_table="project_cost_codes",
    erp_model=ErpProjectCostCode,
    procore_model=ProcoreCostCode,
    map_record=map_project_cost_code,
    key_field="project_cost_code_key",
    target=Target("/rest/v1.0/cost_codes/sync", body_scope=(), query_scope=("project_id",)),
    writer=SyncWriter(link_by="code"),
    list_path="/rest/v1.0/cost_codes",
    list_scope=("project_id",),
    parents=(PROJECTS, STANDARD_COST_CODES),
)


# --- WBS codes (project) --------------------------------------------------------------------


class ErpWbsCode(ErpRow):
    wbs_key: str
    project_number: str | None = None
    sub_job_code: str | None = None
    cost_code: str | None = None
    cost_type: str | None = None
    description: str | None = None
    updated_at: datetime | None = None


class SegmentItem(ProcoreModel):
    segment_id: int
    segment_item_id: int


class ProcoreWbsCode(ProcoreModel):
    description: str | None = None
    segment_items: list[SegmentItem]


def map_wbs_code(row: ErpWbsCode, refs: Refs) -> Mapped:
    project = row.project_number
    project_id = refs.id(PROJECTS, project, f"project {project}")
    settings: Settings = refs.context["settings"]
    items = []
    if row.sub_job_code:
        sub_job_id = refs.id(SUB_JOBS, f"{project}|{row.sub_job_code}", f"sub job {row.sub_job_code} of project {project}")
        items.append(SegmentItem(segment_id=settings.wbs_segment_sub_job, segment_item_id=sub_job_id))
    code_id = refs.id(PROJECT_COST_CODES, f"{project}|{row.cost_code}", f"cost code {row.cost_code} in project {project}")
    type_id = refs.id(COST_TYPES, row.cost_type, f"cost type {row.cost_type}")
    items.append(SegmentItem(segment_id=settings.wbs_segment_cost_code, segment_item_id=code_id))
    items.append(SegmentItem(segment_id=settings.wbs_segment_cost_type, segment_item_id=type_id))
    warnings: list[str] = []
    description = fields.truncated(fields.clean_text(row.description), "description", 255, warnings)
    return Mapped(payload=ProcoreWbsCode(description=description, segment_items=items), warnings=warnings,
                  scope={"project_id": project_id})


def segments_of(record: dict) -> tuple[tuple[int, int], ...]:
    """A WBS code is its combination of segment items, whatever order they come in."""
    return tuple(sorted((int(i["segment_id"]), int(i["segment_item_id"])) for i in record.get("segment_items", [])))


WBS_CODES = EntitySpec(
    name="wbs_codes",
    title="WBS codes",
    erp_table="wbs_codes",
    erp_model=ErpWbsCode,
    procore_model=ProcoreWbsCode,
    map_record=map_wbs_code,
    key_field="wbs_key",
    target=Target("/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create",
                  body_scope=(), items_key="bulk"),
    writer=KeyedBatchWriter(match=segments_of),
    list_path="/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes",
    list_scope=(),
    parents=(PROJECTS, SUB_JOBS, PROJECT_COST_CODES, COST_TYPES),
    uses_origin_id=False,
    natural_key=NaturalKey("segment combination", lambda code, scope: (scope.get("project_id"), segments_of(code)),
                           "Procore keeps one WBS code per sub job, cost code and cost type of a project"),
)
