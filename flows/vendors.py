"""Suppliers (ERP) → company vendors (Procore), through ``PATCH /rest/v1.0/vendors/sync``.

The whole entity: a tolerant model of the ERP row, a strict model of what Procore accepts, a
pure mapping between them, and the spec (``flows`` registers it, which makes its flow). The ERP key (supplier code) becomes both
``origin_id`` (the upsert key, added by the engine) and ``origin_code`` (shown in Procore as
"External ID").
"""

from __future__ import annotations

from datetime import datetime

from tasks import fields
from tasks.models import ErpRow, ProcoreModel
from tasks.refs import Refs
from tasks.spec import EntitySpec, Mapped, Target
from tasks.writers import SyncWriter

# Procore's field limits for company vendors.
NAME_MAX = 255
ABBREVIATION_MAX = 255
TEXT_MAX = 255
ZIP_MAX = 20
PHONE_MAX = 40
NOTES_MAX = 10_000


class ErpDirectoryCompany(ErpRow):
    """What the ERP keeps of any company in Procore's directory: suppliers and customers."""

    name: str | None = None
    address: str | None = None
    city: str | None = None
    state_code: str | None = None
    country_code: str | None = None
    zip: str | None = None
    business_phone: str | None = None
    email_address: str | None = None
    is_active: bool | None = None
    updated_at: datetime | None = None


class ErpSupplier(ErpDirectoryCompany):
    """A supplier as the ERP exports it."""

    supplier_code: str
    abbreviated_name: str | None = None
    trade: str | None = None
    website: str | None = None
    notes: str | None = None


class ProcoreVendor(ProcoreModel):
    """What we send to Procore for one vendor."""

    name: str
    abbreviated_name: str | None = None
    address: str | None = None
    city: str | None = None
    state_code: str | None = None
    country_code: str | None = None
    zip: str | None = None
    business_phone: str | None = None
    email_address: str | None = None
    website: str | None = None
    is_active: bool = True
    notes: str | None = None
    origin_code: str


def map_supplier(supplier: ErpSupplier, refs: Refs | None = None) -> Mapped:
    warnings: list[str] = []
    text = fields.clean_text
    country = fields.country_code(text(supplier.country_code))
    vendor = ProcoreVendor(
        name=fields.at_most(fields.required(text(supplier.name), "name"), "name", NAME_MAX),
        abbreviated_name=fields.truncated(text(supplier.abbreviated_name), "abbreviated_name", ABBREVIATION_MAX, warnings),
        address=fields.truncated(text(supplier.address), "address", TEXT_MAX, warnings),
        city=fields.truncated(text(supplier.city), "city", TEXT_MAX, warnings),
        state_code=fields.state_code(text(supplier.state_code), country),
        country_code=country,
        zip=fields.truncated(text(supplier.zip), "zip", ZIP_MAX, warnings),
        business_phone=fields.truncated(text(supplier.business_phone), "business_phone", PHONE_MAX, warnings),
        email_address=fields.email(text(supplier.email_address), "email_address", warnings),
        website=fields.truncated(text(supplier.website), "website", TEXT_MAX, warnings),
        is_active=supplier.is_active is not False,
        notes=fields.truncated(text(supplier.notes), "notes", NOTES_MAX, warnings),
        origin_code=supplier.supplier_code.strip(),
    )
    return Mapped(payload=vendor, warnings=warnings)


VENDORS = EntitySpec(
    name="vendors",
    webhook_resources=("Company Vendors",),
    title="Vendors (ERP suppliers)",
    erp_table="suppliers",
    erp_model=ErpSupplier,
    procore_model=ProcoreVendor,
    map_record=map_supplier,
    key_field="supplier_code",
    target=Target("/rest/v1.0/vendors/sync"),
    writer=SyncWriter(),
    list_path="/rest/v1.0/vendors",
    deactivate={"is_active": False},
)
