"""ERP customers → Procore directory vendors (the owner/client of a prime contract).

Procore has no customer resource: the owner of a prime contract is a company vendor. Customers
therefore sync through the same vendors endpoint as suppliers, with ``customer:`` in front of
their origin_id so that a customer code can never collide with a supplier code.
"""

from __future__ import annotations

import dataclasses

from flows.vendors import VENDORS, ErpDirectoryCompany, ErpSupplier, map_supplier
from tasks.refs import Refs
from tasks.spec import Mapped


class ErpCustomer(ErpDirectoryCompany):
    customer_code: str


def map_customer(customer: ErpCustomer, refs: Refs | None = None) -> Mapped:
    """A customer is a vendor with the customer code as its External ID."""
    as_supplier = ErpSupplier(supplier_code=customer.customer_code, **customer.model_dump(exclude={"customer_code"}))
    return map_supplier(as_supplier, refs)


# Same endpoint, models and writer as suppliers; another ERP table, key and origin_id space.
CUSTOMERS = dataclasses.replace(
    VENDORS,
    name="customers",
    title="Customers (Procore vendors)",
    erp_table="customers",
    erp_model=ErpCustomer,
    map_record=map_customer,
    key_field="customer_code",
    origin_prefix="customer:",
)
