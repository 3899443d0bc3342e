"""One module per synced entity; each declares its models, mapping and spec, then a small flow.

``ENTITY_FLOWS`` names every entity flow in dependency order; the CLI, the demo and the
deployments all read it, so adding an entity here makes it runnable everywhere.
"""

from __future__ import annotations

from prefect import Flow

from flows.vendors import VENDORS, sync_vendors
from tasks.spec import EntitySpec

ENTITY_FLOWS: dict[str, tuple[EntitySpec, Flow]] = {
    VENDORS.name: (VENDORS, sync_vendors),
}
