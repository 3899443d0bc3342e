"""ERP employees → Procore company users marked as employees (is_employee, employee_id)."""

from __future__ import annotations

from datetime import datetime

from procore_sync.errors import InvalidRecord
from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import SyncWriter


class ErpEmployee(ErpRow):
    employee_number: str
    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None
    job_title: str | None = None
    business_phone: str | None = None
    is_active: bool | None = None
    updated_at: datetime | None = None


class ProcoreUser(ProcoreModel):
    first_name: str | None = None
    last_name: str
    email_address: str
    job_title: str | None = None
    business_phone: str | None = None
    is_active: bool = True
    is_employee: bool = True
    employee_id: str


def map_employee(employee: ErpEmployee, refs: Refs | None = None) -> Mapped:
    warnings: list[str] = []
    text = fields.clean_text
    email = text(employee.email_address)
    if email is None or fields.email(email, "email_address", []) is None:
        raise InvalidRecord(f"email_address {employee.email_address!r} is not an e-mail address; Procore needs one to create a user")
    payload = ProcoreUser(
        first_name=fields.truncated(text(employee.first_name), "first_name", 255, warnings),
        last_name=fields.at_most(fields.required(text(employee.last_name), "last_name"), "last_name", 255),
        email_address=email.lower(),
        job_title=fields.truncated(text(employee.job_title), "job_title", 255, warnings),
        business_phone=fields.truncated(text(employee.business_phone), "business_phone", 40, warnings),
        is_active=employee.is_active is not False,
        employee_id=employee.employee_number.strip(),
    )
    return Mapped(payload=payload, warnings=warnings)


EMPLOYEES = EntitySpec(
    name="employees",
    webhook_resources=("Company Users",),
    title="Employees (Procore users)",
    erp_table="employees",
    erp_model=ErpEmployee,
    procore_model=ProcoreUser,
    map_record=map_employee,
    key_field="employee_number",
    target=Target("/rest/v1.3/companies/{company_id}/users/sync", body_scope=()),
    writer=SyncWriter(),
    list_path="/rest/v1.3/companies/{company_id}/users",
    list_scope=(),
    deactivate={"is_active": False},
)
