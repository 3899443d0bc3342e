"""Where a deployment finds an entity's flow: ``flows/entities.py:sync_<name>``.

The flows are made by the registry (``flows.registry``) from the specs ``flows`` registers, so
there is no function to write per entity; an attribute here reads the registry, which importing
``flows`` fills, also when Prefect loads this file as a script of its own.
"""

from __future__ import annotations

from prefect import Flow

from flows import ENTITY_FLOWS


def __getattr__(attribute: str) -> Flow:
    name = attribute.removeprefix("sync_")
    if attribute.startswith("sync_") and name in ENTITY_FLOWS:
        return ENTITY_FLOWS[name][1]
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}; entities: {', '.join(ENTITY_FLOWS)}")


def __dir__() -> list[str]:
    return sorted([*globals(), *(f"sync_{name}" for name in ENTITY_FLOWS)])
